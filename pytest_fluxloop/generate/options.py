"""What one generation does: every setting resolved from ``input.yaml`` and the command line.

:meth:`GenerationOptions.from_config` is the one place that decides each setting, so the CLI
passes what the user typed (``None``: not given) and gets either resolved options or a
:class:`~.errors.GenerationError` / :class:`~pytest_fluxloop.errors.ConfigError` naming the
key or option to fix. In LLM mode the API key is resolved here, before any request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from string import Formatter
from typing import Literal, get_args

from ..config.loader import LoadedConfig
from ..config.models import InputConfig, LLMGenerationConfig, Persona, VariationStrategy
from ..llm import connect
from ..plan.inputs import DEFAULT_INPUTS_FILE
from .deterministic import check_strategies
from .errors import GenerationError

__all__ = [
    "CONFIG_KEY",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_SEED",
    "KNOWN_STRATEGIES",
    "MAX_CONCURRENCY",
    "MODES",
    "PROMPT_FIELDS",
    "ROLE",
    "GenerationOptions",
    "LLMOptions",
    "Mode",
]

Mode = Literal["deterministic", "llm"]
MODES: tuple[Mode, ...] = ("deterministic", "llm")
#: The seed when neither ``--seed`` nor simulation.yaml's ``seed`` gives one.
DEFAULT_SEED = 42
DEFAULT_CONCURRENCY = 4
#: More parallel requests than this mostly buys rate limits.
MAX_CONCURRENCY = 16
#: Every strategy name input.yaml accepts (the deterministic operators may support fewer).
KNOWN_STRATEGIES: tuple[str, ...] = get_args(VariationStrategy)
#: Who makes the LLM calls: starts every LLM error message.
ROLE = "generator"
#: The settings block named in LLM messages.
CONFIG_KEY = "input_generation.llm"
#: Placeholders ``input_generation.llm.user_prompt_template`` may use. ``input``,
#: ``persona``, ``strategy`` and ``metadata`` are the earlier generator's.
PROMPT_FIELDS = (
    "input",
    "persona",
    "persona_name",
    "persona_description",
    "strategy",
    "strategy_name",
    "count",
    "metadata",
    "expected_intent",
)
# input_generation.llm keys that have no counterpart in the LLM layer's request (it sends the
# model, the temperature, the output schema and, to anthropic, max_tokens): named in a
# notice, never dropped silently.
_UNSENT_LLM_KEYS = (
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "reasoning_effort",
    "text_verbosity",
)


@dataclass(frozen=True)
class LLMOptions:
    """The LLM settings of an LLM-mode generation (``input_generation.llm`` resolved).

    Args:
        provider: ``openai`` (also any OpenAI-compatible server) or ``anthropic``.
        model: the model asked for variations.
        api_key: the resolved key (never shown in ``repr`` or messages).
        base_url: the server; None for the SDK's default.
        temperature: ``input_generation.llm.temperature``, else ``variation_temperature``.
        system_prompt: replaces the default system prompt when set.
        user_prompt_template: replaces the default user prompt (placeholders
            :data:`PROMPT_FIELDS`); the output format line is always appended.
        strategy_prompts: strategy name -> the instruction used for that strategy.
        max_outputs: the most variations one request asks for.
        max_tokens: the output token limit of one request.
        timeout: seconds per request.
        invalid_output_retries: extra calls after an answer that fails validation.
        transport_retries: extra calls after 429 / 5xx / connection failures.
        retry_base_delay: the first backoff delay when the server gives no Retry-After.
    """

    provider: str
    model: str
    api_key: str = field(repr=False)
    base_url: str | None = None
    temperature: float = 0.7
    system_prompt: str | None = None
    user_prompt_template: str | None = None
    strategy_prompts: Mapping[str, str] = field(default_factory=dict)
    max_outputs: int | None = None
    max_tokens: int | None = None
    timeout: float = 120.0
    invalid_output_retries: int = 2
    transport_retries: int = 3
    retry_base_delay: float = 0.5


@dataclass(frozen=True)
class GenerationOptions:
    """Every setting of one generation, resolved (build with :meth:`from_config`).

    Args:
        mode: ``deterministic`` (offline operators) or ``llm``.
        strategies: the variation strategies, in the order jobs run them.
        personas: the personas to vary for, in config order; empty: no persona.
        count: variations asked per base input × persona × strategy.
        temperature: how far variations may stray (operators and LLM alike).
        seed: the generation seed; each job's seed is derived from it.
        seed_source: where ``seed`` came from (``--seed``, ``simulation.yaml seed`` or
            ``default``), written into ``generation_config``.
        limit: the most entries written (None: all).
        offset: entries skipped before ``limit`` applies (batches).
        include_base: whether each base input is written too, as strategy ``base``.
        output: the inputs file to write (absolute).
        concurrency: LLM requests in flight at once.
        llm: the LLM settings; set exactly in LLM mode.
        notices: settings accepted but not (fully) acted on; callers show them.
    """

    mode: Mode
    strategies: tuple[str, ...]
    personas: tuple[Persona, ...]
    count: int
    temperature: float
    seed: int
    seed_source: str
    output: Path
    limit: int | None = None
    offset: int = 0
    include_base: bool = True
    concurrency: int = DEFAULT_CONCURRENCY
    llm: LLMOptions | None = None
    notices: tuple[str, ...] = ()

    @property
    def ask_count(self) -> int:
        """Variations asked of one job: ``count``, capped by ``llm.max_outputs``."""
        if self.llm is not None and self.llm.max_outputs is not None:
            return min(self.count, self.llm.max_outputs)
        return self.count

    @classmethod
    def from_config(
        cls,
        cfg: LoadedConfig,
        *,
        mode: str | None = None,
        strategies: Sequence[str] | str | None = None,
        personas: Sequence[str] | str | None = None,
        count: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        limit: int | None = None,
        offset: int | None = None,
        include_base: bool = True,
        output: str | Path | None = None,
        concurrency: int | None = None,
        provider: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
    ) -> GenerationOptions:
        """Resolve the options of a generation from ``cfg`` and the command line.

        Every keyword is what the user gave on the command line, None when not given (list
        values may also be one comma-separated string). Defaults: ``mode`` from
        ``input_generation.mode``, else deterministic; ``strategies`` from
        ``input_generation.strategies``, else ``variation_strategies``; ``count`` and
        ``temperature`` from ``variation_count`` / ``variation_temperature``; ``seed`` from
        simulation.yaml's ``seed`` when written there, else :data:`DEFAULT_SEED`; ``output``
        from ``inputs_file``, else ``inputs/generated.yaml`` (relative paths: from the
        project root, as ``run experiment --inputs`` reads them); ``concurrency`` from
        ``input_generation.llm.batch_size``, else :data:`DEFAULT_CONCURRENCY`.

        Raises:
            GenerationError: no base inputs, no strategies, an unknown strategy or persona,
                a strategy without deterministic rules in deterministic mode (``custom``),
                a value out of range, LLM mode with ``input_generation.llm.enabled: false``.
            ConfigError: LLM mode without an API key (naming ``OPENAI_API_KEY`` or the
                provider's variable), an SDK that is not installed, a bad base URL.
        """
        source = _input_source(cfg)
        inputs = cfg.input or InputConfig()
        generation = inputs.input_generation
        notices: list[str] = []
        if not inputs.base_inputs:
            raise GenerationError(
                f"no base_inputs in {source}: generation varies them; add "
                "base_inputs: [{input: ...}]"
            )
        chosen_mode = _mode(mode, generation.mode if generation else None)
        chosen_strategies = _strategies(strategies, inputs, source)
        if chosen_mode == "deterministic":
            check_strategies(chosen_strategies)  # custom has no rules: say so before running
        chosen_personas = _personas(personas, inputs.personas, source)
        chosen_count = _in_range(
            "--count", inputs.variation_count if count is None else count, 1, 1000
        )
        chosen_temperature = float(
            inputs.variation_temperature if temperature is None else temperature
        )
        if not 0.0 <= chosen_temperature <= 2.0:
            raise GenerationError(f"--temperature must be between 0 and 2, got {temperature}")
        chosen_seed, seed_source = _seed(cfg, seed)
        if limit is not None:
            _in_range("--limit", limit, 1, None)
        chosen_offset = _in_range("--offset", 0 if offset is None else offset, 0, None)
        llm_config = (generation.llm if generation else None) or LLMGenerationConfig()
        if concurrency is None:
            concurrency = llm_config.batch_size or DEFAULT_CONCURRENCY
        _in_range("--concurrency", concurrency, 1, None)
        if concurrency > MAX_CONCURRENCY:
            notices.append(
                f"concurrency {concurrency} is more than {MAX_CONCURRENCY}; using "
                f"{MAX_CONCURRENCY} requests at once"
            )
            concurrency = MAX_CONCURRENCY
        llm: LLMOptions | None = None
        if chosen_mode == "llm":
            llm = _llm_options(
                llm_config,
                source,
                strategies=chosen_strategies,
                temperature=chosen_temperature,
                count=chosen_count,
                provider=provider,
                model=model,
                api_key=api_key,
                base_url=base_url,
                notices=notices,
            )
        return cls(
            mode=chosen_mode,
            strategies=chosen_strategies,
            personas=chosen_personas,
            count=chosen_count,
            temperature=chosen_temperature,
            seed=chosen_seed,
            seed_source=seed_source,
            output=_output(cfg, output, inputs, notices),
            limit=limit,
            offset=chosen_offset,
            include_base=include_base,
            concurrency=concurrency,
            llm=llm,
            notices=tuple(notices),
        )


# --------------------------------------------------------------------------- resolution steps


def _input_source(cfg: LoadedConfig) -> str:
    """input.yaml (or simulation.yaml holding its keys), relative to the project, for messages."""
    path = cfg.sources.get("input") or (cfg.config_dir / "input.yaml")
    return relative_to_project(cfg, path)


def relative_to_project(cfg: LoadedConfig, path: Path) -> str:
    """``path`` relative to the project root in ``/`` form; absolute when outside it."""
    try:
        return path.resolve().relative_to(cfg.project_root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _names(value: Sequence[str] | str | None) -> list[str] | None:
    """A list from the command line: repeated values and/or comma-separated ones."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


def _unique(names: Iterable[str]) -> tuple[str, ...]:
    # A name given twice would plan the same jobs twice: keep its first place only.
    return tuple(dict.fromkeys(names))


def _mode(given: str | None, configured: str | None) -> Mode:
    chosen = given or configured or "deterministic"
    for mode in MODES:
        if chosen == mode:
            return mode
    raise GenerationError(f"unknown generation mode {chosen!r}; use {' or '.join(MODES)}")


def _strategies(
    given: Sequence[str] | str | None, inputs: InputConfig, source: str
) -> tuple[str, ...]:
    names = _names(given)
    if names is None:
        generation = inputs.input_generation
        configured = generation.strategies if generation else None
        names = list(configured or inputs.variation_strategies)
    if not names:
        raise GenerationError(
            f"no variation strategies: set variation_strategies (or "
            f"input_generation.strategies) in {source}, or pass --strategies "
            f"(known: {', '.join(KNOWN_STRATEGIES)})"
        )
    unknown = [name for name in names if name not in KNOWN_STRATEGIES]
    if unknown:
        raise GenerationError(
            f"unknown strategy(ies) {', '.join(map(repr, unknown))}; known strategies: "
            f"{', '.join(KNOWN_STRATEGIES)}"
        )
    return _unique(names)


def _personas(
    given: Sequence[str] | str | None, configured: list[Persona] | None, source: str
) -> tuple[Persona, ...]:
    if configured is not None and not configured:
        # run experiment rejects the empty list too: say so now, not after generating.
        raise GenerationError(
            f"{source}: personas is an empty list; add a persona or remove the key to "
            "generate inputs without one"
        )
    personas = list(configured or [])
    wanted = _names(given)
    if not wanted:
        return tuple(personas)
    known = [persona.name for persona in personas]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise GenerationError(
            f"--personas: unknown persona(s) {', '.join(unknown)}; known personas in "
            f"{source}: {', '.join(known) or '(none)'}"
        )
    chosen = set(wanted)
    # Config order, not the order typed: the job plan (and so the file) stays the same.
    return tuple(persona for persona in personas if persona.name in chosen)


def _in_range(option: str, value: int, low: int, high: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise GenerationError(f"{option} must be a whole number, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise GenerationError(f"{option} must be {bounds}, got {value}")
    return value


def _seed(cfg: LoadedConfig, given: int | None) -> tuple[int, str]:
    if given is not None:
        return _in_range("--seed", given, 0, None), "--seed"
    simulation = cfg.simulation
    # Only a seed the user wrote counts as "set": the model's default is also 42, but the
    # provenance should say the seed was not chosen.
    if "seed" in simulation.model_fields_set and simulation.seed is not None:
        return simulation.seed, "simulation.yaml seed"
    return DEFAULT_SEED, "default"


def _output(
    cfg: LoadedConfig, given: str | Path | None, inputs: InputConfig, notices: list[str]
) -> Path:
    read = inputs.inputs_file or DEFAULT_INPUTS_FILE
    path = cfg.resolve(given if given is not None else read)
    if path.resolve() != cfg.resolve(read).resolve():
        notices.append(
            f"run experiment reads {read}; run this file with --inputs "
            f"{relative_to_project(cfg, path)}"
        )
    return path


def _llm_options(
    settings: LLMGenerationConfig,
    source: str,
    *,
    strategies: tuple[str, ...],
    temperature: float,
    count: int,
    provider: str | None,
    model: str | None,
    api_key: str | None,
    base_url: str | None,
    notices: list[str],
) -> LLMOptions:
    if not settings.enabled:
        raise GenerationError(
            f"{source}: input_generation.llm.enabled is false; set it to true to generate "
            "with an LLM, or use --mode deterministic"
        )
    chosen_provider = (provider or settings.provider).strip()
    if chosen_provider not in connect.PROVIDERS:
        raise GenerationError(
            f"{CONFIG_KEY}.provider {chosen_provider!r} is not supported: use openai (also "
            "any OpenAI-compatible server, through OPENAI_BASE_URL) or anthropic; for "
            "offline generation use --mode deterministic"
        )
    chosen_model = (model or settings.model).strip()
    if not chosen_model:
        raise GenerationError(f"{CONFIG_KEY}.model is empty; name the model to use")
    request_temperature = settings.temperature if settings.temperature is not None else temperature
    if chosen_provider == "anthropic" and request_temperature > 1.0:
        raise GenerationError(
            f"the generator's temperature must be between 0 and 1 for provider anthropic, "
            f"got {request_temperature} (set {CONFIG_KEY}.temperature or "
            "variation_temperature)"
        )
    if "custom" in strategies and not settings.strategy_prompts.get("custom", "").strip():
        raise GenerationError(
            f"strategy 'custom' needs its instruction in {CONFIG_KEY}.strategy_prompts.custom "
            f"({source})"
        )
    extra = sorted(set(settings.strategy_prompts) - set(KNOWN_STRATEGIES))
    if extra:
        raise GenerationError(
            f"{CONFIG_KEY}.strategy_prompts: unknown strategy(ies) {', '.join(extra)}; "
            f"known strategies: {', '.join(KNOWN_STRATEGIES)}"
        )
    if settings.user_prompt_template is not None:
        check_template(settings.user_prompt_template)
    if settings.max_outputs is not None and settings.max_outputs < count:
        notices.append(
            f"{CONFIG_KEY}.max_outputs is {settings.max_outputs}: each request asks for "
            f"{settings.max_outputs} variation(s), not variation_count ({count})"
        )
    for key in _UNSENT_LLM_KEYS:
        if getattr(settings, key) is not None:
            notices.append(
                f"{CONFIG_KEY}.{key} is not sent: the generator sends the model, the "
                "temperature and the output schema (and max_tokens to anthropic) only"
            )
    if chosen_provider == "openai" and settings.max_tokens is not None:
        # The LLM layer's openai client sends no output limit (only Anthropic's API needs one).
        notices.append(
            f"{CONFIG_KEY}.max_tokens is not sent to provider openai (it is to anthropic); "
            "the server's own output limit applies"
        )
    connect.require_sdk(chosen_provider, role=ROLE)
    key = connect.resolve_api_key(
        chosen_provider,
        api_key if api_key is not None else settings.api_key,
        config_key=CONFIG_KEY,
        role=ROLE,
    )
    url = connect.resolve_base_url(chosen_provider, base_url, config_key=CONFIG_KEY)
    return LLMOptions(
        provider=chosen_provider,
        model=chosen_model,
        api_key=key,
        base_url=url,
        temperature=request_temperature,
        system_prompt=settings.system_prompt,
        user_prompt_template=settings.user_prompt_template,
        strategy_prompts=dict(settings.strategy_prompts),
        max_outputs=settings.max_outputs,
        max_tokens=settings.max_tokens,
        timeout=float(settings.request_timeout or 120),
    )


def check_template(template: str) -> None:
    """Check ``user_prompt_template``: only :data:`PROMPT_FIELDS`, well-formed braces.

    Raises:
        GenerationError: naming the unknown placeholder or the syntax problem.
    """
    try:
        fields = [name for _, name, _, _ in Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise GenerationError(
            f"{CONFIG_KEY}.user_prompt_template: {exc} (write a literal brace as {{{{ or }}}})"
        ) from None
    for name in fields:
        if name not in PROMPT_FIELDS:
            shown = f"{{{name}}}" if name else "{}"
            raise GenerationError(
                f"{CONFIG_KEY}.user_prompt_template: unknown placeholder {shown}; use "
                f"{', '.join('{' + known + '}' for known in PROMPT_FIELDS)} (a literal brace "
                "is written {{ or }})"
            )
