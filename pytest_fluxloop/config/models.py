"""Pydantic models for every documented config file and field.

``configs/simulation.yaml`` is modelled field by field (types, defaults, ranges) as the
FluxLoop documentation describes it; ``project.yaml``, ``input.yaml`` and ``evaluation.yaml``
in the shapes the earlier FluxLoop releases write.
All models forbid unknown keys and validate strictly, so a typo or a YAML ``NO`` where a
string belongs is an error rather than a silently ignored or coerced value.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class StrictModel(BaseModel):
    """Base: unknown keys are errors; no lax coercion (``"3"`` is not an int, ``NO`` not a str)."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True)


NonEmptyStr = Annotated[str, Field(min_length=1)]


# --------------------------------------------------------------------------- simulation.yaml

#: Default of ``artifact_field_max_chars``: big enough for any normal answer, small enough
#: that a runaway output (megabytes) is not copied into every artifact file.
DEFAULT_ARTIFACT_FIELD_MAX_CHARS = 100_000


class RunnerConfig(StrictModel):
    """``runner``: how FluxLoop calls the agent."""

    target: NonEmptyStr | None = Field(
        default=None,
        description="module:function, module:Class.method or module:instance.method",
    )
    module_path: NonEmptyStr | None = Field(default=None, description="Module (with function_name)")
    function_name: NonEmptyStr | None = Field(default=None, description="Function in module_path")
    working_directory: str = Field(default=".", description="Relative to the project root")
    python_path: list[str] | None = Field(default=None, description="Extra import paths")
    timeout_seconds: int = Field(default=120, ge=10, le=3600, description="Per-run time limit")
    max_retries: int = Field(default=3, ge=0, le=10, description="Retries on transient errors")
    retry_on: list[NonEmptyStr] = Field(
        default_factory=list,
        description=(
            "Extra exception types to treat as transient, by class name or dotted path "
            "(e.g. 'MyFlakyBackendError', 'requests.exceptions.ChunkedEncodingError')"
        ),
    )
    iterations: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Older spelling of the top-level iterations, still accepted",
    )

    @model_validator(mode="after")
    def _target_parts_agree(self) -> RunnerConfig:
        if self.function_name and not self.module_path:
            raise ValueError("runner.function_name needs runner.module_path (or use runner.target)")
        if self.module_path and not self.function_name:
            raise ValueError("runner.module_path needs runner.function_name (or use runner.target)")
        return self

    @property
    def target_spec(self) -> str | None:
        """The effective ``module:attr`` target (``target`` wins; it must agree with the parts)."""
        parts = f"{self.module_path}:{self.function_name}" if self.module_path else None
        return self.target or parts


class ReplayArgsConfig(StrictModel):
    """``replay_args``: replay recorded call arguments with the generated input swapped in."""

    enabled: bool = False
    recording_file: str = "recordings/args_recording.jsonl"
    override_param_path: str = "data.content"


class SupervisorMetadata(StrictModel):
    """``multi_turn.supervisor.metadata``: settings of the mock supervisor."""

    scripted_questions: list[str] = Field(default_factory=list)
    mock_decision: Literal["terminate", "continue"] = "terminate"
    mock_reason: str = "script_complete"
    mock_closing: str | None = None
    mock_next_user_message: str | None = None


class SupervisorConfig(StrictModel):
    """``multi_turn.supervisor``: who plays the user after the first message."""

    provider: Literal["openai", "anthropic", "mock"] = "openai"
    model: NonEmptyStr = "gpt-4o-mini"
    temperature: float = Field(default=0.2, ge=0.0, le=2.0)
    api_key: str | None = Field(default=None, description="Overrides the environment's key")
    base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint")
    system_prompt: str | None = None
    metadata: SupervisorMetadata = Field(default_factory=SupervisorMetadata)


class MultiTurnConfig(StrictModel):
    """``multi_turn``: conversations driven by a supervisor."""

    enabled: bool = False
    max_turns: int = Field(default=8, ge=2, le=50)
    auto_approve_tools: bool = True
    persona_override: NonEmptyStr | None = None
    supervisor: SupervisorConfig = Field(default_factory=SupervisorConfig)


class LegacyOutputConfig(StrictModel):
    """``output``: the older block form (``directory``, ``format: jsonl``), still accepted."""

    directory: str | None = None
    format: Literal["jsonl"] = "jsonl"


class SimulationConfig(StrictModel):
    """``configs/simulation.yaml``: how an experiment executes."""

    name: NonEmptyStr = Field(description="Experiment name")
    description: str = Field(description="Human-readable description")
    iterations: int = Field(default=1, ge=1, le=1000)
    parallel_runs: int = Field(default=1, ge=1, le=20)
    run_delay_seconds: float = Field(default=0.0, ge=0.0, le=60.0)
    seed: int | None = 42
    runner: RunnerConfig
    replay_args: ReplayArgsConfig = Field(default_factory=ReplayArgsConfig)
    multi_turn: MultiTurnConfig = Field(default_factory=MultiTurnConfig)
    output_directory: str = "experiments"
    save_traces: bool = True
    save_aggregated_metrics: bool = True
    artifact_field_max_chars: int = Field(
        default=DEFAULT_ARTIFACT_FIELD_MAX_CHARS,
        ge=100,
        le=100_000_000,
        description=(
            "Longest input/output (in characters) written to trace_summary.jsonl and "
            "observations.jsonl; a longer value is cut to this length, with its full length "
            "and sha256 recorded next to it (<field>_truncated). traces.jsonl keeps the "
            "record's full input and output."
        ),
    )
    output: LegacyOutputConfig | None = None


# --------------------------------------------------------------------------- project.yaml


class ProjectMetadata(BaseModel):
    """``metadata``: free keys plus the ones FluxLoop reads (``service_context``)."""

    model_config = ConfigDict(extra="allow", strict=True)

    team: str | None = None
    environment: str | None = None
    service_context: str | None = None


class ProjectConfig(StrictModel):
    """``configs/project.yaml``: project metadata and collector settings."""

    name: NonEmptyStr | None = None
    description: str | None = None
    version: str | None = None
    source_root: str | None = None
    collector_url: str | None = None
    collector_api_key: str | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: ProjectMetadata = Field(default_factory=ProjectMetadata)


# --------------------------------------------------------------------------- input.yaml

VariationStrategy = Literal[
    "rephrase",
    "verbose",
    "concise",
    "typo",
    "error_prone",
    "persona_based",
    "adversarial",
    "multilingual",
    "custom",
]


class BaseInput(StrictModel):
    """One entry of ``base_inputs``."""

    input: NonEmptyStr
    expected_intent: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class Persona(StrictModel):
    """One entry of ``personas``."""

    name: NonEmptyStr
    description: str | None = None
    characteristics: list[str] = Field(default_factory=list)
    language: str | None = None
    expertise_level: str | None = None
    goals: list[str] = Field(default_factory=list)


class LLMGenerationConfig(StrictModel):
    """``input_generation.llm``."""

    enabled: bool = True
    provider: str = "openai"
    model: str = "gpt-4o-mini"
    api_key: str | None = None


class InputGenerationConfig(StrictModel):
    """``input_generation``: how ``fluxloop generate inputs`` makes variations."""

    mode: Literal["llm", "deterministic"] = "deterministic"
    strategies: list[VariationStrategy] | None = None
    llm: LLMGenerationConfig | None = None


class InputConfig(StrictModel):
    """``configs/input.yaml``: personas, base inputs and generation settings."""

    base_inputs: list[BaseInput] | None = None
    personas: list[Persona] | None = None
    inputs_file: NonEmptyStr | None = None
    variation_strategies: list[VariationStrategy] = Field(default_factory=list)
    variation_count: int = Field(default=1, ge=1, le=1000)
    variation_temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    input_generation: InputGenerationConfig | None = None


# --------------------------------------------------------------------------- evaluation.yaml


class EvaluationGoal(StrictModel):
    """``evaluation_goal``."""

    text: str


class Rule(BaseModel):
    """One rule of a rule-based evaluator; fields depend on ``check``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    check: Literal[
        "output_not_empty",
        "contains",
        "not_contains",
        "matches_regex",
        "latency_under",
        "token_usage_under",
        "similarity",
        "success",
    ]
    target: str | None = None
    keywords: list[str] | None = None
    pattern: str | None = None
    budget_ms: float | None = Field(default=None, gt=0)
    max_tokens: int | None = Field(default=None, gt=0)
    expected_path: str | None = None
    method: str | None = None
    threshold: float | None = None
    weight: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _needs(self) -> Rule:
        required = {
            "contains": ("keywords",),
            "not_contains": ("keywords",),
            "matches_regex": ("pattern",),
            "latency_under": ("budget_ms",),
            "token_usage_under": ("max_tokens",),
            "similarity": ("expected_path",),
        }.get(self.check, ())
        missing = [name for name in required if getattr(self, name) is None]
        if missing:
            raise ValueError(f"check '{self.check}' needs {', '.join(missing)}")
        return self


class Evaluator(StrictModel):
    """One evaluator: ``rule_based`` (rules) or ``llm_judge`` (model + prompt)."""

    name: NonEmptyStr
    type: Literal["rule_based", "llm_judge"]
    enabled: bool = True
    weight: float = Field(default=1.0, ge=0)
    rules: list[Rule] | None = None
    model: str | None = None
    prompt_template: str | None = None
    max_score: float | None = Field(default=None, gt=0)
    parser: str | None = None
    model_parameters: dict[str, Any] | None = None


class Aggregate(StrictModel):
    """``aggregate``."""

    method: Literal["weighted_sum", "average"] = "weighted_sum"
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    by_persona: bool = False


class Limits(StrictModel):
    """``limits``."""

    sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    max_llm_calls: int | None = Field(default=None, ge=0)
    timeout_seconds: float | None = Field(default=None, gt=0)
    cache: str | bool | None = None


class EnabledThreshold(StrictModel):
    """``{enabled, threshold_ms}`` / ``{enabled, threshold_percent}`` blocks."""

    enabled: bool = False
    threshold_ms: float | None = None
    threshold_percent: float | None = None


class PerformanceCriteria(StrictModel):
    """``success_criteria.performance``."""

    all_traces_successful: bool = False
    avg_response_time: EnabledThreshold | None = None
    max_response_time: EnabledThreshold | None = None
    error_rate: EnabledThreshold | None = None


class SuccessCriteria(StrictModel):
    """``success_criteria``."""

    performance: PerformanceCriteria | None = None
    quality: dict[str, bool] = Field(default_factory=dict)
    functionality: dict[str, Any] = Field(default_factory=dict)


class EvaluationConfig(StrictModel):
    """``configs/evaluation.yaml``: evaluators and success criteria."""

    evaluation_goal: EvaluationGoal | None = None
    evaluators: list[Evaluator] = Field(default_factory=list)
    aggregate: Aggregate = Field(default_factory=Aggregate)
    limits: Limits = Field(default_factory=Limits)
    success_criteria: SuccessCriteria | None = None


# --------------------------------------------------------------------------- inputs file


class InputEntry(StrictModel):
    """One entry of an inputs file, in any of the three shapes users have."""

    input: NonEmptyStr
    persona: NonEmptyStr | None = None
    persona_description: str | None = None
    strategy: str | None = None
    base_index: int | None = None
    expected_intent: str | None = None
    id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class InputsFile(StrictModel):
    """``inputs/generated.yaml``: ``generated_inputs`` or ``inputs`` (+ provenance blocks)."""

    inputs: list[InputEntry] | None = None
    generated_inputs: list[InputEntry] | None = None
    stats: dict[str, Any] | None = None
    generation_config: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_list(self) -> InputsFile:
        if self.inputs is not None and self.generated_inputs is not None:
            raise ValueError("use either 'inputs' or 'generated_inputs', not both")
        if self.inputs is None and self.generated_inputs is None:
            raise ValueError("no 'inputs' (or 'generated_inputs') list")
        return self

    @property
    def entries(self) -> list[InputEntry]:
        """The entries, whichever key holds them."""
        return self.inputs if self.inputs is not None else (self.generated_inputs or [])
