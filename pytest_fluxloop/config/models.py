"""Pydantic models for every documented config file and field.

``configs/simulation.yaml`` is modelled field by field (types, defaults, ranges) as the
FluxLoop documentation describes it; ``project.yaml``, ``input.yaml``, ``evaluation.yaml`` and
the inputs file in every shape the earlier FluxLoop releases (fluxloop-cli 0.2.0-0.2.36) wrote.
All models forbid unknown keys and validate strictly, so a typo or a YAML ``NO`` where a
string belongs is an error rather than a silently ignored or coerced value. Only blocks
documented as free-form (``metadata``, ``args``, ``model_parameters`` ...) take any key.
Keys that are accepted but not acted on are reported by the loader as notices.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator


class StrictModel(BaseModel):
    """Base: unknown keys are errors; no lax coercion (``"3"`` is not an int, ``NO`` not a str).

    ``defer_build``: a model's validator is built when it first validates, not at import.
    Most runs never validate most models (the earlier tool's evaluation.yaml layouts alone
    are dozens), and building them all doubled this module's import time.
    """

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True, defer_build=True)


NonEmptyStr = Annotated[str, Field(min_length=1)]


# --------------------------------------------------------------------------- simulation.yaml

#: Default of ``artifact_field_max_chars``: big enough for any normal answer, small enough
#: that a runaway output (megabytes) is not copied into every artifact file.
DEFAULT_ARTIFACT_FIELD_MAX_CHARS = 100_000


#: ``module.path:callable`` (the callable may be dotted: ``module:Class.create``).
_CALLABLE_SPEC = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
#: What a POSIX shell accepts as a variable name (anything else cannot be exported by a
#: shell, and would make ``os.environ`` hold a variable child processes may drop).
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class RunnerConfig(StrictModel):
    """``runner``: how FluxLoop calls the agent.

    Besides the documented keys it models every runner key the earlier FluxLoop releases
    wrote. Keys that cannot apply to an agent running inside the pytest process (Docker,
    setup commands, a requirements file, ``guards``) are accepted here and turned into a
    notice or an error by the loader, never silently ignored.
    """

    target: NonEmptyStr | None = Field(
        default=None,
        description=(
            "module:function, module:Class.method or module:instance.method; takes "
            "precedence over module_path + function_name"
        ),
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
    retry_delay: float | None = Field(
        default=None,
        ge=0.0,
        le=300.0,
        description="Seconds to wait before a retry; unset: the built-in backoff",
    )
    iterations: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Older spelling of the top-level iterations, still accepted",
    )
    args: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments passed to the agent on every call",
    )
    factory: NonEmptyStr | None = Field(
        default=None,
        description=(
            "'module:callable' that builds the instance a module:Class.method target is called on"
        ),
    )
    factory_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for the factory"
    )
    stream_output_path: NonEmptyStr | None = Field(
        default=None,
        description=(
            "Dotted path of the text inside each event an async-generator agent yields "
            "(e.g. 'message.delta')"
        ),
    )
    environment_vars: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables set for the agent (scalar values become text)",
    )
    # Keys of the earlier out-of-process runner. The loader reports each one that is present:
    # the agent always runs inside the pytest process here.
    use_docker: bool = Field(
        default=False, description="Not supported: true is an error, false is ignored"
    )
    docker_image: str | None = Field(default=None, description="Ignored (no Docker runner)")
    docker_build_context: str | None = Field(default=None, description="Ignored (no Docker runner)")
    docker_volumes: list[str] = Field(
        default_factory=list, description="Ignored (no Docker runner)"
    )
    setup_commands: list[str] = Field(
        default_factory=list,
        description="Not run: a non-empty list is an error (run the commands before the run)",
    )
    requirements_file: str | None = Field(
        default=None, description="Not installed: install it yourself (pip install -r FILE)"
    )
    guards: Any = Field(default=None, description="Not supported; ignored with a notice")

    @model_validator(mode="after")
    def _target_parts_agree(self) -> RunnerConfig:
        # With a target, the parts are ignored (the loader says so): incomplete is fine.
        if self.target:
            return self
        if self.function_name and not self.module_path:
            raise ValueError("runner.function_name needs runner.module_path (or use runner.target)")
        if self.module_path and not self.function_name:
            raise ValueError("runner.module_path needs runner.function_name (or use runner.target)")
        return self

    @field_validator("factory")
    @classmethod
    def _factory_spec(cls, value: str | None) -> str | None:
        if value is not None and not _CALLABLE_SPEC.fullmatch(value.strip()):
            raise ValueError(
                f"runner.factory must be 'module:callable' (e.g. 'my_agent.app:build_agent'), "
                f"got {value!r}"
            )
        return value.strip() if value is not None else None

    @field_validator("stream_output_path")
    @classmethod
    def _dotted_path(cls, value: str | None) -> str | None:
        if value is not None and (
            any(not part or part != part.strip() for part in value.split(".")) or ":" in value
        ):
            raise ValueError(
                "runner.stream_output_path must be a dotted path such as 'message.delta' "
                f"(no empty parts or spaces), got {value!r}"
            )
        return value

    @field_validator("environment_vars", mode="before")
    @classmethod
    def _env_values_as_text(cls, value: Any) -> Any:
        """Scalars become the text a shell would hold; names must be variable names."""
        if not isinstance(value, dict):
            return value  # the dict type check reports it
        converted: dict[Any, Any] = {}
        for name, item in value.items():
            if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
                raise ValueError(
                    f"runner.environment_vars: {name!r} is not a valid environment variable "
                    "name (letters, digits and _, not starting with a digit)"
                )
            if isinstance(item, bool):
                # YAML's spelling, not Python's "True": what the user typed in the file.
                converted[name] = "true" if item else "false"
            elif isinstance(item, (int, float, str)):
                converted[name] = str(item)
            else:
                shown = "null" if item is None else type(item).__name__
                raise ValueError(
                    f"runner.environment_vars.{name}: expected text or a number, got {shown} "
                    '(write the value in quotes, e.g. "" for an empty value)'
                )
        return converted

    @property
    def target_spec(self) -> str | None:
        """The effective ``module:attr`` target: ``target`` when set, else the two parts."""
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


class OtelConfig(StrictModel):
    """``otel``: export each case as OpenTelemetry spans (GenAI semantic conventions)."""

    enabled: bool = Field(
        default=False,
        description="Export every case as an invoke_agent span with its turns, LLM calls and "
        "tools as children, through the application's tracer provider or an OTLP exporter "
        "configured from the OTEL_EXPORTER_OTLP_* variables (extra 'otel').",
    )


class CassettesConfig(StrictModel):
    """``cassettes``: record the LLM calls of each case and replay them offline."""

    mode: Literal["off", "record", "replay", "new", "rewrite"] | None = Field(
        default=None,
        description="off; record (cases without a cassette call the network and are "
        "recorded, the others replay); replay (never the network: a call without a "
        "recording fails the case); new (replay what matches, record the rest); rewrite "
        "(record everything again). Unset: replay when the CI variable is set and the "
        "experiment has cassettes, else off.",
    )
    dir: NonEmptyStr = Field(
        default="cassettes",
        description="Folder of the cassettes, relative to the project root; each experiment "
        "has a subfolder with one <case_id>.json per case.",
    )


class CaptureConfig(StrictModel):
    """``capture``: what each case's trace records besides the decorated spans."""

    llm: bool = Field(
        default=True,
        description="Record the agent's openai/anthropic calls (model, messages, output, "
        "token usage, latency) as generation observations.",
    )
    content: bool = Field(
        default=True,
        description="Keep messages and outputs of captured calls; false keeps only model, "
        "parameters, usage and timings (privacy).",
    )
    langchain: bool = Field(
        default=True,
        description="Attach the LangChain/LangGraph callback handler to runnables invoked "
        "in a case.",
    )
    langchain_hidden: bool = Field(
        default=False, description="Also record LangChain runs tagged hidden."
    )
    max_observations: int = Field(
        default=10_000,
        ge=10,
        le=10_000_000,
        description="Observations kept per trace; beyond it they are counted "
        "(observations_dropped on the trace), not kept.",
    )
    redact_keys: list[NonEmptyStr] = Field(
        default_factory=list,
        description="More key names whose values are redacted in every artifact "
        "(besides api_key, authorization, token, password, secret ...).",
    )
    redact_patterns: list[NonEmptyStr] = Field(
        default_factory=list,
        description="More regular expressions whose matches are redacted in every artifact.",
    )

    @field_validator("redact_patterns")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"redact_patterns: {pattern!r} is not a regular expression ({exc})"
                ) from None
        return value


class LegacyOutputConfig(StrictModel):
    """``output``: the older block form (``directory``, ``format: jsonl``), still accepted."""

    directory: str | None = None
    format: Literal["jsonl"] = "jsonl"


class SimulationConfig(StrictModel):
    """``configs/simulation.yaml``: how an experiment executes."""

    name: NonEmptyStr = Field(description="Experiment name")
    description: str = Field(default="", description="Human-readable description")
    iterations: int = Field(default=1, ge=1, le=1000)
    parallel_runs: int = Field(default=1, ge=1, le=20)
    run_delay_seconds: float = Field(default=0.0, ge=0.0, le=60.0)
    seed: int | None = 42
    runner: RunnerConfig
    replay_args: ReplayArgsConfig = Field(default_factory=ReplayArgsConfig)
    multi_turn: MultiTurnConfig = Field(default_factory=MultiTurnConfig)
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    cassettes: CassettesConfig = Field(default_factory=CassettesConfig)
    otel: OtelConfig = Field(default_factory=OtelConfig)
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
    collector_url: str | None = Field(
        default=None,
        description="A FluxLoop collector (fluxloop collector serve) that receives every "
        "trace of the runs of this project, besides the files.",
    )
    collector_api_key: str | None = Field(
        default=None,
        description="The collector's bearer token (else FLUXLOOP_COLLECTOR_TOKEN).",
    )
    collector_allow_insecure_http: bool = Field(
        default=False,
        description="Send the token over plain http:// to a host that is not this machine "
        "(refused by default: anyone on the path could read it).",
    )
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


#: Keys a strategy mapping may name its strategy under (``- type: rephrase`` is what
#: fluxloop-cli 0.2.0 wrote; the earlier loader also read ``name``, ``strategy``, ``value``).
STRATEGY_MAPPING_KEYS = ("type", "name", "strategy", "value")


def _strategy_name(entry: Any) -> Any:
    """``{type: rephrase}`` (or ``name:``/``strategy:``/``value:``) -> ``"rephrase"``.

    Any other mapping is an error naming what it holds; other values pass through to the
    Literal check, which lists the valid names.
    """
    if not isinstance(entry, dict):
        return entry
    keys = list(entry)
    if len(keys) == 1 and keys[0] in STRATEGY_MAPPING_KEYS:
        return entry[keys[0]]
    shown = f"keys {', '.join(map(str, keys))}" if keys else "no keys"
    raise ValueError(
        f"a strategy mapping must hold exactly one of {', '.join(STRATEGY_MAPPING_KEYS)} "
        f"(e.g. '- type: rephrase'), got {shown}; or write the name alone ('- rephrase')"
    )


StrategyEntry = Annotated[
    VariationStrategy,
    BeforeValidator(
        _strategy_name,
        json_schema_input_type=VariationStrategy | dict[str, VariationStrategy],
    ),
]
"""A strategy name, or the older one-key mapping form ``{type: name}``."""


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
    constraints: list[str] = Field(default_factory=list)
    custom_attributes: dict[str, Any] = Field(default_factory=dict)


class LLMGenerationConfig(StrictModel):
    """``input_generation.llm``: the model that writes input variations.

    Only ``fluxloop generate inputs`` of the earlier releases read these; the tuning keys
    that release accepted are modelled so a file using them still loads.
    """

    enabled: bool = True
    provider: str = "openai"
    model: str = "gpt-4o-mini"
    api_key: str | None = None
    system_prompt: str | None = None
    user_prompt_template: str | None = None
    strategy_prompts: dict[str, str] = Field(default_factory=dict)
    max_outputs: int | None = Field(default=None, ge=1, le=20)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=16, le=4096)
    request_timeout: int | None = Field(default=None, ge=1, le=600)
    batch_size: int | None = Field(default=None, ge=1, le=10)
    reasoning_effort: str | None = None
    text_verbosity: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class InputGenerationConfig(StrictModel):
    """``input_generation``: how ``fluxloop generate inputs`` makes variations."""

    mode: Literal["llm", "deterministic"] = "deterministic"
    strategies: list[StrategyEntry] | None = None
    llm: LLMGenerationConfig | None = None


class InputConfig(StrictModel):
    """``configs/input.yaml``: personas, base inputs and generation settings."""

    base_inputs: list[BaseInput] | None = None
    personas: list[Persona] | None = None
    inputs_file: NonEmptyStr | None = None
    variation_strategies: list[StrategyEntry] = Field(default_factory=list)
    variation_count: int = Field(default=1, ge=1, le=1000)
    variation_temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    input_generation: InputGenerationConfig | None = None


# --------------------------------------------------------------------------- evaluation.yaml
# Every layout the earlier releases wrote: the rule/judge evaluators (all versions), the
# "Phase 2" blocks of 0.2.21-0.2.29 (additional_analysis, report, advanced) and the 0.2.36
# layout (metrics, efficiency, output, advanced.llm_judge ...). pytest_fluxloop.evaluation
# compiles them into one plan (evaluation/spec.py); every block is typed, so a typo is an error.


class EvaluationGoal(StrictModel):
    """``evaluation_goal``: what the evaluation is for (shown to judges and in reports)."""

    text: str


#: Regex flag names a ``matches_regex`` rule may set (upper or lower case).
REGEX_FLAGS = ("IGNORECASE", "MULTILINE", "DOTALL")

_TOKEN_BUDGETS = ("max_tokens", "max_total_tokens", "max_prompt_tokens", "max_completion_tokens")


#: The checks a ``rule_based`` evaluator's rules may use.
RULE_CHECKS = (
    "output_not_empty",
    "contains",
    "not_contains",
    "matches_regex",
    "latency_under",
    "token_usage_under",
    "similarity",
    "success",
    "turn_count_under",
    "json_valid",
    "tool_called",
)

#: ``similarity`` methods.
SIMILARITY_METHODS = ("difflib", "jaccard", "exact")


class Rule(StrictModel):
    """One rule of a rule-based evaluator; which fields it needs depends on ``check``.

    ``pytest_fluxloop.evaluation.rules`` knows every check's meaning.
    """

    check: NonEmptyStr
    target: str | None = Field(
        default=None,
        description="What the rule reads: output (default), input, transcript, or one "
        "role's turns (user, assistant, supervisor)",
    )
    keywords: list[str] | None = None
    case_sensitive: bool | None = Field(
        default=None, description="contains / not_contains: match case (default: no)"
    )
    pattern: str | None = None
    flags: str | list[str] | None = Field(
        default=None, description=f"matches_regex: one or more of {', '.join(REGEX_FLAGS)}"
    )
    budget_ms: float | None = Field(default=None, gt=0)
    max_tokens: int | None = Field(default=None, gt=0, description="Total-token budget")
    max_total_tokens: int | None = Field(default=None, gt=0)
    max_prompt_tokens: int | None = Field(default=None, gt=0)
    max_completion_tokens: int | None = Field(default=None, gt=0)
    expected_path: str | None = Field(
        default=None,
        description="similarity: a dotted path to the expected text in the trace "
        "(metadata.expected, expected_intent ...)",
    )
    method: str | None = Field(
        default=None, description="similarity: difflib (default), jaccard, exact"
    )
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    max_turns: int | None = Field(
        default=None, gt=0, description="turn_count_under: the agent's replies must be fewer"
    )
    tool: str | list[str] | None = Field(
        default=None, description="tool_called: the tool name(s) that must be called"
    )
    min_calls: int = Field(default=1, ge=0, description="tool_called: at least this many calls")
    max_calls: int | None = Field(default=None, ge=0, description="tool_called: at most this many")
    json_schema: dict[str, Any] | None = Field(
        default=None, alias="schema", description="json_valid: a JSON Schema the value must match"
    )
    min_score: float | None = Field(
        default=None, ge=0.0, le=1.0, description="similarity: lowest passing ratio"
    )
    weight: float | None = Field(default=None, ge=0)

    @field_validator("check")
    @classmethod
    def _known_check(cls, value: str) -> str:
        if value not in RULE_CHECKS:
            from .errors import suggest_key

            close = suggest_key(value, RULE_CHECKS)
            hint = f" (did you mean {close!r}?)" if close else ""
            raise ValueError(f"unknown check {value!r}{hint}; valid: {', '.join(RULE_CHECKS)}")
        return value

    @field_validator("flags")
    @classmethod
    def _known_flags(cls, value: str | list[str] | None) -> str | list[str] | None:
        names = [value] if isinstance(value, str) else (value or [])
        unknown = [name for name in names if name.upper() not in REGEX_FLAGS]
        if unknown:
            raise ValueError(
                f"unknown regex flag(s) {', '.join(map(repr, unknown))}; "
                f"use {', '.join(REGEX_FLAGS)}"
            )
        return value

    @model_validator(mode="after")
    def _needs(self) -> Rule:
        if self.check == "token_usage_under":
            if all(getattr(self, name) is None for name in _TOKEN_BUDGETS):
                raise ValueError(
                    "check 'token_usage_under' needs max_tokens (or max_total_tokens, "
                    "max_prompt_tokens, max_completion_tokens)"
                )
            return self
        required = {
            "contains": ("keywords",),
            "not_contains": ("keywords",),
            "matches_regex": ("pattern",),
            "latency_under": ("budget_ms",),
            "similarity": ("expected_path",),
            "turn_count_under": ("max_turns",),
            "tool_called": ("tool",),
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
    parser: str | None = Field(
        default=None,
        description="llm_judge: structured (default: verdict, score, reason, evidence), or "
        "the earlier tool's first_number_1_10, json_score, regex_score",
    )
    parser_pattern: str | None = Field(
        default=None, description="regex_score: the pattern whose first group is the score"
    )
    model_parameters: dict[str, Any] | None = None
    provider: Literal["openai"] = "openai"
    api_key: str | None = Field(
        default=None,
        description="llm_judge: the key (else FLUXLOOP_JUDGE_API_KEY, else OPENAI_API_KEY)",
    )
    base_url: str | None = Field(default=None, description="llm_judge: an OpenAI-compatible server")
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, gt=0, description="llm_judge: output limit")
    pass_score: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="The lowest passing score of this evaluator (0..1; default: "
        "aggregate.threshold for judges, every rule passing for rule_based)",
    )
    target: str | None = Field(
        default=None, description="llm_judge: the default target of {output} in the prompt"
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Free notes (e.g. a sample_response)"
    )


class Aggregate(StrictModel):
    """``aggregate``."""

    method: Literal["weighted_sum", "average"] = "weighted_sum"
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    by_persona: bool = False


class Limits(StrictModel):
    """``limits``: what LLM judging may cost."""

    sample_rate: float = Field(
        default=1.0, ge=0.0, le=1.0, description="Share of traces the LLM judges see (rules: all)"
    )
    max_llm_calls: int | None = Field(
        default=None, ge=0, description="Judge calls per run; past it, judges are unscored"
    )
    max_tokens: int | None = Field(
        default=None, gt=0, description="Judge tokens per run; past it, judges are unscored"
    )
    timeout_seconds: float | None = Field(default=None, gt=0, description="Per judge call")
    concurrency: int | None = Field(
        default=None, ge=1, le=64, description="Judge calls in flight at once (default 4)"
    )
    cache: str | bool | None = Field(
        default=None,
        description="The judge cache file (relative to the project root; default "
        ".fluxloop/judge_cache.jsonl), or false for none",
    )


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


# -- additional_analysis (0.2.21-0.2.29)


class PersonaAnalysis(StrictModel):
    """``additional_analysis.persona``."""

    enabled: bool = False
    focus_personas: list[str] = Field(default_factory=list)


class PerformanceAnalysis(StrictModel):
    """``additional_analysis.performance``."""

    detect_outliers: bool = False
    trend_analysis: bool = False


class FailuresAnalysis(StrictModel):
    """``additional_analysis.failures``."""

    enabled: bool = False
    categorize_causes: bool = False


class ComparisonAnalysis(StrictModel):
    """``additional_analysis.comparison``: compare with an earlier run's summary."""

    enabled: bool = False
    baseline_path: str | None = None


class AdditionalAnalysis(StrictModel):
    """``additional_analysis``."""

    persona: PersonaAnalysis | None = None
    performance: PerformanceAnalysis | None = None
    failures: FailuresAnalysis | None = None
    comparison: ComparisonAnalysis | None = None


# -- report (0.2.21-0.2.29)


class ReportSections(StrictModel):
    """``report.sections``: which sections the report has."""

    executive_summary: bool | None = None
    key_metrics: bool | None = None
    detailed_results: bool | None = None
    statistical_analysis: bool | None = None
    failure_cases: bool | None = None
    success_examples: bool | None = None
    recommendations: bool | None = None
    action_items: bool | None = None


class ReportVisualizations(StrictModel):
    """``report.visualizations``."""

    charts_and_graphs: bool | None = None
    tables: bool | None = None
    interactive: bool | None = None


class ReportConfig(StrictModel):
    """``report``: the evaluation report's form."""

    style: Literal["quick", "standard", "detailed"] | None = None
    tone: Literal["technical", "executive", "balanced"] | None = None
    output: Literal["md", "html", "both"] | None = None
    template_path: str | None = None
    language: str | None = None
    sections: ReportSections | None = None
    visualizations: ReportVisualizations | None = None


# -- advanced (both layouts: 0.2.21-0.2.29 and 0.2.36)


class StatisticalTests(StrictModel):
    """``advanced.statistical_tests``."""

    enabled: bool = False
    significance_level: float = Field(default=0.05, gt=0.0, lt=1.0)
    confidence_interval: float = Field(default=0.95, gt=0.0, le=1.0)


class OutlierHandling(StrictModel):
    """``advanced.outliers``."""

    detection: bool = False
    handling: Literal["remove", "analyze_separately", "include"] = "include"


class AlertCondition(StrictModel):
    """One ``advanced.alerts.conditions`` entry: ``metric operator threshold``."""

    metric: NonEmptyStr
    threshold: float
    operator: Literal[">", "<", ">=", "<="] = ">="


class Alerts(StrictModel):
    """``advanced.alerts``."""

    enabled: bool = False
    conditions: list[AlertCondition] = Field(default_factory=list)


class LLMJudgeSettings(StrictModel):
    """``advanced.llm_judge``: the model that judges traces (0.2.36 layout)."""

    model: NonEmptyStr | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, gt=0)


class EvaluationFilters(StrictModel):
    """``advanced.filters``: which traces are evaluated (empty lists: all)."""

    personas: list[str] = Field(default_factory=list)
    include_trace_ids: list[str] = Field(default_factory=list)
    exclude_trace_ids: list[str] = Field(default_factory=list)


class OverallSuccess(StrictModel):
    """``advanced.overall_success``."""

    use_default_rules: bool = True
    custom_rules: list[Any] = Field(default_factory=list)


class AdvancedConfig(StrictModel):
    """``advanced``: the keys of both layouts (0.2.21-0.2.29 and 0.2.36) are accepted."""

    statistical_tests: StatisticalTests | None = None
    outliers: OutlierHandling | None = None
    alerts: Alerts | None = None
    llm_judge: LLMJudgeSettings | None = None
    llm_concurrency: int | None = Field(default=None, ge=1, le=16)
    llm_retries: int | None = Field(default=None, ge=0, le=10)
    filters: EvaluationFilters | None = None
    overall_success: OverallSuccess | None = None


# -- metrics / efficiency / output (0.2.36 layout)


class MetricThresholds(StrictModel):
    """``thresholds`` of one metric, in percent."""

    good: float | None = Field(default=None, ge=0.0, le=100.0)
    fair: float | None = Field(default=None, ge=0.0, le=100.0)


class MetricSetting(StrictModel):
    """One entry of ``metrics``."""

    enabled: bool = True
    thresholds: MetricThresholds | None = None


class MetricsConfig(StrictModel):
    """``metrics``: the judged rates of the 0.2.36 layout."""

    task_completion: MetricSetting | None = None
    hallucination: MetricSetting | None = None
    relevance: MetricSetting | None = None
    tool_usage_appropriateness: MetricSetting | None = None
    user_satisfaction: MetricSetting | None = None
    clarity: MetricSetting | None = None
    persona_consistency: MetricSetting | None = None


class EfficiencyMetric(StrictModel):
    """One measured metric of ``efficiency`` and how its outliers are found."""

    enabled: bool = True
    outlier_mode: Literal["statistical", "absolute"] = "statistical"
    std_multiplier: float | None = Field(default=None, gt=0)
    absolute_threshold: float | None = Field(default=None, gt=0)


class PersonaGap(StrictModel):
    """``efficiency.persona_gap``: compare the metrics across personas."""

    enabled: bool = True


class EfficiencyConfig(StrictModel):
    """``efficiency``: statistics computed from the traces (0.2.36 layout)."""

    latency: EfficiencyMetric | None = None
    output_tokens: EfficiencyMetric | None = None
    conversation_depth: EfficiencyMetric | None = None
    persona_gap: PersonaGap | None = None


class OutputTemplates(StrictModel):
    """``output.templates``."""

    summary: str | None = None
    deep_analysis: str | None = None


class EvaluationOutput(StrictModel):
    """``output`` of evaluation.yaml: the report files (0.2.36 layout).

    Not simulation.yaml's older ``output: {directory, format}`` block.
    """

    summary_file: str | None = None
    deep_analysis_file: str | None = None
    language: str | None = None
    templates: OutputTemplates | None = None


def _goal_text(value: Any) -> Any:
    # Older files wrote the goal as a bare string; it means {text: ...}.
    return {"text": value} if isinstance(value, str) else value


class EvaluationConfig(StrictModel):
    """``configs/evaluation.yaml``: evaluators, criteria and report settings."""

    evaluation_goal: Annotated[
        EvaluationGoal | None,
        BeforeValidator(_goal_text, json_schema_input_type=EvaluationGoal | str | None),
    ] = None
    evaluators: list[Evaluator] = Field(default_factory=list)
    aggregate: Aggregate = Field(default_factory=Aggregate)
    limits: Limits = Field(default_factory=Limits)
    gates: list[NonEmptyStr] = Field(
        default_factory=list,
        description='Run-level gates, e.g. "pass^3>=0.8", "success_rate>=0.9", '
        '"p95_latency_ms<2000"; a failed gate fails the session (exit code 1)',
    )
    reliability_k: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=list,
        description="The k of pass@k / pass^k in summary.json (default 1, 3 and the iterations)",
    )
    success_criteria: SuccessCriteria | None = None
    additional_analysis: AdditionalAnalysis | None = None
    report: ReportConfig | None = None
    advanced: AdvancedConfig | None = None
    metrics: MetricsConfig | None = None
    efficiency: EfficiencyConfig | None = None
    output: EvaluationOutput | None = None


# --------------------------------------------------------------------------- inputs file


class InputEntry(StrictModel):
    """One entry of an inputs file, in any of the three shapes users have."""

    input: NonEmptyStr
    persona: NonEmptyStr | None = None
    persona_description: str | None = None
    strategy: str | None = None
    base_index: int | None = None
    prompt_hash: str | None = Field(
        default=None, description="Written by the earlier generator: hash of its prompt"
    )
    expected_intent: str | None = None
    id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class InputsFile(StrictModel):
    """``inputs/generated.yaml``: ``generated_inputs`` or ``inputs`` (+ provenance blocks).

    The earlier generator wrote provenance next to the list: ``generated_at`` (an ISO time,
    which YAML reads as a datetime when unquoted), ``metadata``, ``stats`` and
    ``generation_config``; fluxloop-cli 0.2.36 also wrote a readable copy of the inputs per
    persona as top-level ``<persona name>: [text, ...]`` lists (see ``persona_summaries``).
    None of it changes what runs.
    """

    inputs: list[InputEntry] | None = None
    generated_inputs: list[InputEntry] | None = None
    generated_at: str | datetime | date | None = None
    stats: dict[str, Any] | None = None
    generation_config: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    persona_summaries: dict[str, list[str]] = Field(
        default_factory=dict,
        description=(
            "Per-persona copies of the input texts (fluxloop-cli 0.2.36 wrote them as "
            "top-level keys named after the persona); informational, not run"
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _collect_persona_summaries(cls, data: Any) -> Any:
        """Move 0.2.36's top-level ``<persona>: [str, ...]`` lists into persona_summaries.

        Only in a file with that generator's ``stats``/``generation_config`` blocks, and only
        lists of text: any other unknown key stays an unknown-key error (typos are caught).
        """
        if not isinstance(data, dict) or not ({"stats", "generation_config"} & set(data)):
            return data
        moved = {
            key: value
            for key, value in data.items()
            if key not in cls.model_fields
            and isinstance(value, list)
            and all(isinstance(item, str) for item in value)
        }
        written = data.get("persona_summaries", {})
        if not moved or not isinstance(written, dict):
            return data  # nothing to move, or a malformed key the type check reports
        rest = {key: value for key, value in data.items() if key not in moved}
        rest["persona_summaries"] = {**moved, **written}
        return rest

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
