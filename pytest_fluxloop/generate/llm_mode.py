"""LLM mode: one structured-output request per job, through the shared LLM layer.

Each job (base input × persona × strategy) is one :class:`~pytest_fluxloop.llm.LLMRequest`
asking for ``{"variations": [{"input": str}, ...]}``; the answer is validated on the client
and retried a bounded number of times (:class:`~pytest_fluxloop.llm.StructuredCaller`).
Transport retries, Retry-After and the fatal latch are the client's (:mod:`pytest_fluxloop.llm`):
nothing is retried here.

Requests run on a thread pool capped at ``options.concurrency``; answers are handed on in
job order whatever order they arrive in, so the file is in a deterministic order. A fatal
error (bad key, no quota, unknown model) stops the generation; any other failure of one job
is recorded and the generation goes on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from ..config.models import Persona
from ..llm.client import LLMClient
from ..llm.connect import PROVIDER_KEY_ENV, create_client
from ..llm.errors import LLMError
from ..llm.parsing import parse_model
from ..llm.structured import StructuredCaller
from ..llm.types import LLMRequest
from .errors import GenerationError, GeneratorOutputWarning
from .jobs import Job, JobOutcome, Produced
from .options import CONFIG_KEY, ROLE, GenerationOptions, LLMOptions

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "SCHEMA_NAME",
    "STRATEGY_INSTRUCTIONS",
    "VARIATIONS_SCHEMA",
    "VariationItem",
    "VariationsAnswer",
    "build_request",
    "create_generator_client",
    "prompt_hash",
    "run_llm",
]

SCHEMA_NAME = "input_variations"

#: The answer's JSON schema (OpenAI strict structured-output rules: every property
#: required, no additional properties).
VARIATIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "variations": {
            "type": "array",
            "description": "The user messages, one per variation",
            "items": {
                "type": "object",
                "properties": {
                    "input": {"type": "string", "description": "One complete user message"}
                },
                "required": ["input"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["variations"],
    "additionalProperties": False,
}


class VariationItem(BaseModel):
    """One variation of an answer."""

    model_config = ConfigDict(extra="forbid", strict=True)

    input: str

    @field_validator("input")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a variation is empty")
        return value.strip()


class VariationsAnswer(BaseModel):
    """The whole answer to one request; at least one variation (an empty list is retried)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    variations: list[VariationItem]

    @field_validator("variations")
    @classmethod
    def _some(cls, value: list[VariationItem]) -> list[VariationItem]:
        if not value:
            raise ValueError("the answer holds no variations")
        return value


DEFAULT_SYSTEM_PROMPT = """\
You write test inputs for an AI assistant: realistic messages a user would send to it.
You are given one base message, the user who sends it (a persona, when there is one) and a
variation strategy. Write new messages that keep the base message's intent and follow the
strategy, in the persona's voice and language. Every message must differ from the base
message and from the others. Write only the user's messages: no numbering, quotes,
explanations or answers."""

#: What each strategy asks for (``input_generation.llm.strategy_prompts`` replaces one).
STRATEGY_INSTRUCTIONS: dict[str, str] = {
    "rephrase": "Rephrase the message with different words and structure; same meaning.",
    "verbose": "Make the message longer and more detailed, adding context a real user might give.",
    "concise": "Make the message as short as possible while keeping its intent.",
    "typo": "Keep the wording but add realistic typing mistakes (typos, missing letters).",
    "error_prone": (
        "Write it as a user who makes mistakes: typos, wrong or missing details, unclear "
        "references, grammar slips."
    ),
    "persona_based": (
        "Rewrite it the way this persona would write it: their vocabulary, expertise, "
        "goals and tone."
    ),
    "adversarial": (
        "Make it adversarial: an edge case, a tricky or ambiguous phrasing, a request that "
        "tests the assistant's limits or tries to mislead it, keeping the same topic."
    ),
    "multilingual": (
        "Write it in another language than the base message (the persona's language when "
        "given, else a common one), or mixing languages as real users do."
    ),
    "custom": "Vary the message.",  # custom requires strategy_prompts.custom (options check)
}

_OUTPUT_LINE = (
    'Answer with JSON only: {{"variations": [{{"input": "..."}}, ...]}} holding exactly '
    "{count} variation(s)."
)


def prompt_hash(request: LLMRequest) -> str:
    """The first 16 hex digits of the sha256 of the request's system and user prompts."""
    text = f"{request.system}\n\n{request.user}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _persona_text(persona: Persona | None) -> str:
    if persona is None:
        return "(no persona: a typical user)"
    lines = [f"name: {persona.name}"]
    if persona.description:
        lines.append(f"description: {persona.description}")
    if persona.characteristics:
        lines.append(f"characteristics: {'; '.join(persona.characteristics)}")
    if persona.expertise_level:
        lines.append(f"expertise: {persona.expertise_level}")
    if persona.goals:
        lines.append(f"goals: {'; '.join(persona.goals)}")
    if persona.language:
        lines.append(f"language: {persona.language}")
    if persona.constraints:
        lines.append(f"constraints: {'; '.join(persona.constraints)}")
    if persona.custom_attributes:
        shown = json.dumps(persona.custom_attributes, ensure_ascii=False, sort_keys=True)
        lines.append(f"other attributes: {shown}")
    return "\n".join(lines)


def _user_prompt(job: Job, llm: LLMOptions, count: int) -> str:
    instruction = llm.strategy_prompts.get(job.strategy) or STRATEGY_INSTRUCTIONS[job.strategy]
    persona = _persona_text(job.persona)
    base = job.base
    if llm.user_prompt_template is not None:
        body = llm.user_prompt_template.format(
            input=base.input,
            persona=persona,
            persona_name=job.persona_name or "",
            persona_description=(job.persona.description if job.persona else None) or "",
            strategy=instruction,
            strategy_name=job.strategy,
            count=count,
            metadata=json.dumps(base.metadata, ensure_ascii=False, sort_keys=True, default=str),
            expected_intent=base.expected_intent or "",
        )
    else:
        parts = [
            f"Base message:\n{base.input}",
            f"Persona:\n{persona}",
            f"Strategy ({job.strategy}): {instruction}",
        ]
        if base.expected_intent:
            parts.append(f"The user's intent: {base.expected_intent}")
        parts.append(f"Write {count} variation(s).")
        body = "\n\n".join(parts)
    return f"{body}\n\n{_OUTPUT_LINE.format(count=count)}"


def build_request(job: Job, options: GenerationOptions) -> LLMRequest:
    """The request of one job: system prompt, user prompt, schema, temperature."""
    llm = _llm(options)
    system = (llm.system_prompt or "").strip() or DEFAULT_SYSTEM_PROMPT
    return LLMRequest(
        system=system,
        user=_user_prompt(job, llm, options.ask_count),
        schema=VARIATIONS_SCHEMA,
        schema_name=SCHEMA_NAME,
        schema_description="Variations of a user message for testing an AI assistant",
        temperature=llm.temperature,
        max_tokens=llm.max_tokens,
    )


def create_generator_client(llm: LLMOptions) -> LLMClient:
    """The provider client of the generator role (no request is made here)."""
    return create_client(
        llm.provider,
        api_key=llm.api_key,
        base_url=llm.base_url,
        model=llm.model,
        role=ROLE,
        config_key=CONFIG_KEY,
        key_hint=f"{CONFIG_KEY}.api_key or {PROVIDER_KEY_ENV[llm.provider]}",
        transport_retries=llm.transport_retries,
        retry_base_delay=llm.retry_base_delay,
        timeout=llm.timeout,
        warning_category=GeneratorOutputWarning,
    )


def _llm(options: GenerationOptions) -> LLMOptions:
    if options.llm is None:
        raise GenerationError("LLM mode needs LLM settings (GenerationOptions.llm is None)")
    return options.llm


def run_llm(
    jobs: Sequence[Job],
    options: GenerationOptions,
    *,
    progress: Callable[[int, int], None] | None = None,
    client: LLMClient | None = None,
) -> Iterator[JobOutcome]:
    """Run ``jobs`` as LLM requests, yielding their outcomes in job order.

    At most ``options.concurrency`` requests are in flight, and at most twice that many jobs
    are started ahead of the next one to yield, so a consumer that stops early (a
    ``--limit`` reached) leaves few requests wasted. Closing the iterator cancels the jobs
    not started and waits for the ones in flight.

    Args:
        jobs: the plan.
        options: LLM mode options (``options.llm`` set).
        progress: called with (jobs done, jobs in all) as each request finishes, in the
            consumer's thread.
        client: the provider client; default one made from ``options.llm``.

    Raises:
        GenerationError: a fatal LLM error (bad key, no quota, unknown model) stopped it.
    """
    llm = _llm(options)
    client = client if client is not None else create_generator_client(llm)
    caller = StructuredCaller(
        client,
        parse_model(VariationsAnswer),
        invalid_output_retries=llm.invalid_output_retries,
        what="variations answer",
    )
    total = len(jobs)
    ahead = 2 * options.concurrency
    pending: dict[Future[JobOutcome], int] = {}
    ready: dict[int, JobOutcome] = {}
    submitted = yielded = finished = 0
    executor = ThreadPoolExecutor(
        max_workers=options.concurrency, thread_name_prefix="fluxloop-generate"
    )
    # Done, or closed by a consumer that has enough: wait for the requests in flight (their
    # answers are dropped). A fatal error or Ctrl-C: don't wait up to a request timeout.
    wait_for_flight = True
    try:
        while yielded < total:
            while (
                submitted < total
                and len(pending) < options.concurrency
                and submitted - yielded < ahead
            ):
                job = jobs[submitted]
                pending[executor.submit(_run_job, caller, job, options)] = submitted
                submitted += 1
            if yielded in ready:
                outcome = ready.pop(yielded)
                yielded += 1
                yield outcome
                continue
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in done:
                index = pending.pop(future)
                ready[index] = future.result()  # a fatal error is raised here
                finished += 1
                if progress is not None:
                    progress(finished, total)
    except GeneratorExit:
        raise
    except BaseException:
        wait_for_flight = False
        raise
    finally:
        for future in pending:
            future.cancel()
        executor.shutdown(wait=wait_for_flight, cancel_futures=True)


def _run_job(
    caller: StructuredCaller[VariationsAnswer], job: Job, options: GenerationOptions
) -> JobOutcome:
    """One request; a fatal error becomes a GenerationError that stops the generation."""
    llm = _llm(options)
    asked = options.ask_count
    request = build_request(job, options)
    try:
        result = caller.call(request)
    except LLMError as exc:
        if exc.fatal:
            raise GenerationError(f"input generation stopped: {exc}", llm_error=exc) from None
        return JobOutcome(job=job, asked=asked, error=str(exc), attempts=exc.attempts)
    texts = [item.input for item in result.value.variations]
    # More than asked: the first ones are kept, as an operator stops at ``count``.
    texts = texts[:asked]
    note = f"the model wrote {len(texts)} of {asked}" if len(texts) < asked else None
    provenance = {
        "operator": "llm",
        "provider": llm.provider,
        "model": result.model,
        "prompt_hash": prompt_hash(request),
        "temperature": llm.temperature,
        "seed": job.seed,
    }
    return JobOutcome(
        job=job,
        asked=asked,
        variations=[Produced(text=text, provenance=dict(provenance)) for text in texts],
        note=note,
        attempts=result.attempts,
        usage=result.usage.model_dump() if result.usage is not None else None,
    )
