"""The ``llm_judge`` evaluator: a model grades a trace against a rubric, on the LLM layer.

One judgment: render the prompt (:mod:`.judge_prompt`) → look the verdict up in the cache
(:mod:`.judge_cache`) → reserve the worst case of calls in the budget (:mod:`.budget`) →
within the run's concurrency cap, ask for the verdict through
:class:`~pytest_fluxloop.llm.StructuredCaller` (transport retries, Retry-After, invalid-output
retries, the fatal latch are the LLM layer's), read with :mod:`.judge_answer` → normalise
the score → store it in the cache.

A judge never raises for an LLM problem: an answer that can't be parsed, a refusal, a cut-off
answer, a timeout, a rate limit, a bad key, the budget running out ... each gives an
``unscored`` result whose ``unscored_reason`` is the error's code (``budget`` for the budget,
``error`` for anything unexpected). Unscored is never a failure of the agent.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from pydantic import ValidationError

from ..cassettes.session import current_tape
from ..llm.client import LLMClient
from ..llm.connect import create_client, require_sdk, resolve_api_key, resolve_base_url
from ..llm.errors import LLMError, LLMOutputWarning
from ..llm.parsing import ParseFn
from ..llm.retry import MAX_RETRY_AFTER_SECONDS
from ..llm.structured import StructuredCaller
from ..llm.types import LLMRequest, TokenUsage
from ..records import EvaluatorResult, TraceRecord
from ..redact import Redactor
from .budget import JudgeBudget
from .judge_answer import PARSERS, Judgement, answer_schema, verdict_parser
from .judge_cache import JudgeCache, cache_key
from .judge_prompt import DEFAULT_TEMPLATE, check_template, prompt_values, system_prompt
from .judge_prompt import user_message as render_user_message

__all__ = [
    "PARSERS",
    "JudgeOutcome",
    "JudgeOutputWarning",
    "JudgeRuntime",
    "JudgeSettings",
    "Judgement",
    "LLMJudge",
    "judge_api_key",
    "verdict_parser",
]

log = logging.getLogger("pytest_fluxloop.evaluation")

ROLE = "judge"
_KEY_HINT = "evaluators[].api_key, FLUXLOOP_JUDGE_API_KEY, or OPENAI_API_KEY"
_MAX_REASON_CHARS = 2000


def judge_api_key(explicit: str | None) -> str:
    """The judges' API key: ``explicit``, else ``FLUXLOOP_JUDGE_API_KEY``, else
    ``OPENAI_API_KEY``.

    Raises:
        ConfigError: none is set; the message says where to set one.
    """
    return resolve_api_key(
        "openai",
        explicit,
        env=("FLUXLOOP_JUDGE_API_KEY",),
        config_key="evaluators[]",
        role=ROLE,
    )


class JudgeOutputWarning(LLMOutputWarning):
    """The judge server did not follow the requested output format."""


@dataclass(frozen=True)
class JudgeSettings:
    """One ``llm_judge`` evaluator, resolved.

    ``max_score`` is the judge's own scale: unset, it is 10 for ``first_number_1_10`` (the
    earlier tool's 1-10 scores) and 1.0 otherwise. ``pass_score`` (0..1, on the normalised
    score) is an extra bar for ``structured`` verdicts and the bar for the other parsers
    (default 0.5). ``temperature`` None means 0.0. ``api_key`` None or empty reads
    ``FLUXLOOP_JUDGE_API_KEY`` / ``OPENAI_API_KEY`` when the first call is made.
    ``model_parameters`` are sent in the request body as they are. ``target`` changes what
    ``{output}`` reads (see :func:`.judge_prompt.prompt_values`).
    """

    name: str
    model: str
    prompt_template: str | None = None
    max_score: float | None = None
    parser: str = "structured"
    parser_pattern: str | None = None
    pass_score: float | None = None
    weight: float = 1.0
    temperature: float | None = 0.0
    max_tokens: int | None = None
    model_parameters: Mapping[str, Any] = field(default_factory=dict)
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    timeout_seconds: float = 60.0
    invalid_output_retries: int = 2
    transport_retries: int = 3
    retry_base_delay: float = 0.5
    max_retry_after: float = MAX_RETRY_AFTER_SECONDS
    evaluation_goal: str | None = None
    service_context: str | None = None
    target: str | None = None

    def __post_init__(self) -> None:
        if self.max_score is None:
            default = 10.0 if self.parser == "first_number_1_10" else 1.0
            object.__setattr__(self, "max_score", default)
        if self.temperature is None:
            object.__setattr__(self, "temperature", 0.0)

    @property
    def type(self) -> Literal["llm_judge"]:
        """The evaluator type (rule evaluators say ``rule_based``)."""
        return "llm_judge"

    @property
    def scale(self) -> float:
        """The resolved ``max_score``."""
        return float(self.max_score) if self.max_score is not None else 1.0

    def problems(self) -> list[str]:
        """What makes these settings unusable (empty when they are fine)."""
        problems = []
        if self.parser not in PARSERS:
            problems.append(f"unknown parser {self.parser!r}; use {', '.join(PARSERS)}")
        if self.parser == "regex_score":
            try:
                re.compile(self.parser_pattern or "")
            except re.error as exc:
                problems.append(f"parser_pattern {self.parser_pattern!r} is not a regex: {exc}")
            if not self.parser_pattern:
                problems.append("parser regex_score needs parser_pattern")
        if not self.scale > 0:
            problems.append(f"max_score must be > 0, got {self.max_score}")
        if self.pass_score is not None and not 0.0 <= self.pass_score <= 1.0:
            problems.append(f"pass_score must be within 0..1, got {self.pass_score}")
        problems += check_template(self.prompt_template or DEFAULT_TEMPLATE)
        return problems


class JudgeOutcome(NamedTuple):
    """One judgment: the result, the tokens it used and the provider calls it made."""

    result: EvaluatorResult
    usage: TokenUsage | None
    calls: int


class JudgeRuntime:
    """What all judges of a run (one process) share; thread-safe.

    Args:
        concurrency: judge calls in flight at once (``limits.concurrency``).
        budget: the calls and tokens judges may spend; default: no caps.
        cache: the verdict cache; None for none.
    """

    def __init__(
        self,
        *,
        concurrency: int = 4,
        budget: JudgeBudget | None = None,
        cache: JudgeCache | None = None,
    ) -> None:
        self.concurrency = max(1, concurrency)
        self.semaphore = threading.BoundedSemaphore(self.concurrency)
        self.budget = budget if budget is not None else JudgeBudget()
        self.cache = cache
        self._lock = threading.Lock()
        self._clients: dict[tuple[Any, ...], LLMClient] = {}
        self._fatal: LLMError | None = None

    @property
    def fatal_error(self) -> LLMError | None:
        """The first fatal error (bad key, no quota, unknown model) a judge met, if any:
        every later call of that client fails the same way without calling the server."""
        with self._lock:
            return self._fatal

    def client(self, settings: JudgeSettings) -> LLMClient:
        """The client for ``settings``' server, key, model and retry settings (created once,
        with the ``openai`` SDK).

        Raises:
            ConfigError: no API key, a bad base URL, or the ``openai`` package is missing.
        """
        api_key = judge_api_key(settings.api_key or None)
        base_url = resolve_base_url("openai", settings.base_url, config_key="evaluators[]")
        # The key is part of the identity, but only as a hash: nothing here keeps it in clear.
        key = (
            base_url,
            hashlib.sha256(api_key.encode("utf-8")).hexdigest(),
            settings.model,
            settings.timeout_seconds,
            settings.transport_retries,
            settings.retry_base_delay,
            settings.max_retry_after,
        )
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                require_sdk("openai", role=ROLE)
                client = create_client(
                    "openai",
                    api_key=api_key,
                    base_url=base_url,
                    model=settings.model,
                    role=ROLE,
                    config_key="evaluators[]",
                    key_hint=_KEY_HINT,
                    transport_retries=settings.transport_retries,
                    max_retry_after=settings.max_retry_after,
                    retry_base_delay=settings.retry_base_delay,
                    timeout=settings.timeout_seconds,
                    warning_category=JudgeOutputWarning,
                )
                self._clients[key] = client
            return client

    def note_error(self, error: LLMError, redactor: Redactor) -> None:
        """Remember (and log once) the first fatal error."""
        if not error.fatal or error.repeat:
            return
        with self._lock:
            if self._fatal is not None:
                return
            self._fatal = error
        log.warning(
            "%s; later judge calls with these settings are unscored without calling the server",
            redactor.redact_text(error.message),
        )


# ---------------------------------------------------------------------------- the judge


class LLMJudge:
    """One ``llm_judge`` evaluator; thread-safe, shared by every case of a run.

    Settings that can't work (see :meth:`JudgeSettings.problems`) make every result
    unscored with the reason, rather than raising: the plan checks them before a run.
    """

    def __init__(self, settings: JudgeSettings, runtime: JudgeRuntime) -> None:
        self.settings = settings
        self.runtime = runtime
        problems = settings.problems()
        self._problem = "; ".join(problems) if problems else None
        self._template = settings.prompt_template or DEFAULT_TEMPLATE
        parser = settings.parser if settings.parser in PARSERS else "structured"
        self._system = system_prompt(settings.scale, settings.evaluation_goal, parser=parser)
        self._schema = answer_schema(parser)
        self._redactor = Redactor(extra_secrets=[settings.api_key] if settings.api_key else ())
        self._parse: ParseFn[Judgement] | None = None
        if self._problem is None:
            self._parse = verdict_parser(parser, settings.scale, settings.parser_pattern)
        # Everything that changes a verdict, besides the model and the trace.
        self._rubric = {
            "system": self._system,
            "template": self._template,
            "parser": settings.parser,
            "parser_pattern": settings.parser_pattern,
            "max_score": settings.scale,
            "pass_score": settings.pass_score,
            "temperature": settings.temperature,
            "model_parameters": dict(settings.model_parameters),
        }
        per_try = 1 + max(0, settings.transport_retries)
        # The worst case first, then runs with fewer invalid-output retries for the end of
        # the budget; each covers every transport retry of each try.
        self._ladder = tuple(
            (tries + 1) * per_try
            for tries in range(max(0, settings.invalid_output_retries), -1, -1)
        )
        self._per_try = per_try
        self._lock = threading.Lock()
        self._callers: dict[int, StructuredCaller[Judgement]] = {}

    def judge(self, record: TraceRecord) -> JudgeOutcome:
        """Judge ``record``; never raises (a problem gives an unscored result)."""
        try:
            return self._judge(record)
        except Exception as exc:  # a problem of one judgment must not lose the trace
            message = f"{type(exc).__name__}: {exc}"
            log.info("judge %s: %s", self.settings.name, self._redactor.redact_text(message))
            return JudgeOutcome(self._unscored("error", message), None, 0)

    def _judge(self, record: TraceRecord) -> JudgeOutcome:
        settings = self.settings
        if self._problem is not None:
            return JudgeOutcome(self._unscored("error", self._problem), None, 0)
        values = prompt_values(
            record,
            service_context=settings.service_context,
            evaluation_goal=settings.evaluation_goal,
            target=settings.target,
        )
        user = render_user_message(
            self._template, {k: self._redactor.redact_text(v) for k, v in values.items()}
        )
        key = cache_key(settings.model, self._rubric, user)
        # With a cassette, the judge's call is what it records and replays: a cache hit
        # would leave nothing recorded for a replay on another machine.
        cache = self.runtime.cache if current_tape.get() is None else None
        if cache is not None:
            hit = self._from_cache(cache.get(key))
            if hit is not None:
                return JudgeOutcome(hit, None, 0)
        client = self.runtime.client(settings)
        budget = self.runtime.budget
        granted, refusal = budget.reserve_within(self._ladder)
        if refusal is not None:
            return JudgeOutcome(self._unscored("budget", f"{refusal}: not judged"), None, 0)
        # Unless the call tells otherwise, count the whole reservation as spent: the cap
        # must hold even if something unexpected happens.
        used, usage = granted, None
        try:
            outcome = self._call(client, user, granted)
            used, usage = outcome.calls, outcome.usage
        finally:
            budget.settle(granted, used, usage.total_tokens if usage is not None else None)
        if cache is not None:  # it stores scored verdicts only
            cache.put(key, evaluator=settings.name, model=settings.model, result=outcome.result)
        return outcome

    def _call(self, client: LLMClient, user: str, granted: int) -> JudgeOutcome:
        settings = self.settings
        request = LLMRequest(
            system=self._system,
            user=user,
            schema=self._schema,
            schema_name="verdict",
            schema_description="Record the judge's verdict on the conversation.",
            temperature=settings.temperature,
            model=settings.model,
            max_tokens=settings.max_tokens,
            extra_body=self._extra_body(client),
        )
        caller = self._caller(client, granted // self._per_try - 1)
        with self.runtime.semaphore:
            try:
                answer = caller.call(request)
            except LLMError as exc:
                self.runtime.note_error(exc, self._redactor)
                result = self._unscored(exc.code, exc.message, calls=exc.attempts)
                return JudgeOutcome(result, exc.usage, exc.attempts)
        result = self._scored(answer.value, model=answer.model, calls=answer.attempts)
        return JudgeOutcome(result, answer.usage, answer.attempts)

    def _caller(self, client: LLMClient, retries: int) -> StructuredCaller[Judgement]:
        # One caller per retry bound (a lean run at the end of the budget gets its own), so
        # the format warning is still given once per judge and bound.
        assert self._parse is not None
        with self._lock:
            caller = self._callers.get(retries)
            if caller is None or caller.client is not client:
                caller = StructuredCaller(
                    client, self._parse, invalid_output_retries=retries, what="verdict"
                )
                self._callers[retries] = caller
            return caller

    def _extra_body(self, client: LLMClient) -> dict[str, Any] | None:
        settings = self.settings
        body: dict[str, Any] = {}
        if settings.max_tokens is not None:
            # OpenAI's newer models only take max_completion_tokens; OpenAI-compatible
            # servers mostly know max_tokens. model_parameters can say otherwise.
            official = "api.openai.com" in client.base_url
            body["max_completion_tokens" if official else "max_tokens"] = settings.max_tokens
        body.update(settings.model_parameters)
        return body or None

    # ------------------------------------------------------------------ results

    def _scored(self, judgement: Judgement, *, model: str, calls: int) -> EvaluatorResult:
        settings = self.settings
        score = min(max(judgement.raw_score / settings.scale, 0.0), 1.0)
        if settings.parser == "structured":
            passed = judgement.verdict == "pass" and (
                settings.pass_score is None or score >= settings.pass_score
            )
        else:
            bar = settings.pass_score if settings.pass_score is not None else 0.5
            passed = score >= bar
        evidence = [
            {"turn": item["turn"], "quote": self._redactor.redact_text(str(item["quote"]))}
            for item in judgement.evidence
        ]
        return EvaluatorResult(
            name=settings.name,
            type="llm_judge",
            status="passed" if passed else "failed",
            score=score,
            raw_score=judgement.raw_score,
            max_score=settings.scale,
            weight=settings.weight,
            reason=self._reason(judgement.reason),
            evidence=evidence,
            model=model,
            llm_calls=calls,
        )

    def _unscored(self, code: str, message: str, *, calls: int = 0) -> EvaluatorResult:
        settings = self.settings
        return EvaluatorResult(
            name=settings.name,
            type="llm_judge",
            status="unscored",
            max_score=settings.scale,
            weight=settings.weight,
            reason=self._reason(message),
            unscored_reason=code,
            model=settings.model,
            llm_calls=calls,
        )

    def _from_cache(self, stored: dict[str, Any] | None) -> EvaluatorResult | None:
        """The cached verdict as this judge's result; None when there is none or it is
        unusable (a miss, judged again)."""
        if stored is None:
            return None
        settings = self.settings
        try:
            return EvaluatorResult(
                name=settings.name,
                type="llm_judge",
                status=stored["status"],
                score=stored["score"],
                raw_score=stored.get("raw_score"),
                max_score=stored.get("max_score", settings.scale),
                weight=settings.weight,
                reason=str(stored.get("reason") or ""),
                evidence=list(stored.get("evidence") or []),
                model=settings.model,
                cached=True,
                llm_calls=0,
            )
        except (KeyError, TypeError, ValidationError):
            return None

    def _reason(self, text: str) -> str:
        text = self._redactor.redact_text(text.strip())
        if len(text) > _MAX_REASON_CHARS:
            text = text[: _MAX_REASON_CHARS - 3] + "..."
        return text
