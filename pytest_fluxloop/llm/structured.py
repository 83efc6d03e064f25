"""Structured output: call, validate on the client, retry invalid output a bounded number
of times.

Any role uses it the same way: build an :class:`~.types.LLMRequest` with its prompt and
schema, and hand over a parse function (see :mod:`.parsing`) that turns a raw output into
its own type::

    caller = StructuredCaller(client, parse_model(Verdict), what="verdict")
    result = caller.call(LLMRequest(system=..., user=..., schema=..., schema_name="verdict"))
    result.value  # a validated Verdict

A server that ignores the requested format (prose around the JSON, other keys) is warned
about once per caller; its output is still validated and retried.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Generic, TypeVar

from .client import LLMClient
from .parsing import InvalidOutput, ParseFn
from .types import LLMRequest, RawOutput, Tally, TokenUsage

__all__ = ["Structured", "StructuredCaller"]

log = logging.getLogger("pytest_fluxloop.llm")

T = TypeVar("T")


@dataclass(frozen=True)
class Structured(Generic[T]):
    """A validated output plus what it cost."""

    value: T
    usage: TokenUsage | None  # None when the server reported no usage
    attempts: int  # provider calls made, transport and invalid-output retries included
    model: str


class StructuredCaller(Generic[T]):
    """Calls ``client`` until ``parse`` accepts the output, within the retry bounds.

    Args:
        client: the provider client (its transport retries and gates apply to every call).
        parse: ``raw -> (value, loose)``; raises :class:`~.parsing.InvalidOutput`.
        invalid_output_retries: extra calls after output ``parse`` rejects.
        what: what one output is (``"decision"``, ``"verdict"``), for messages.

    Thread-safe: one caller may serve all cases of a run.
    """

    def __init__(
        self,
        client: LLMClient,
        parse: ParseFn[T],
        *,
        invalid_output_retries: int = 2,
        what: str = "output",
    ) -> None:
        self.client = client
        self.parse = parse
        self.invalid_output_retries = max(0, invalid_output_retries)
        self.what = what
        self._lock = threading.Lock()
        self._warned_format = False

    def call(self, request: LLMRequest) -> Structured[T]:
        """Return the first valid output.

        Raises:
            LLMError: ``truncated`` / ``refused`` at once (a retry would most likely end the
                same way), ``invalid_output`` after the bounded retries, or whatever the
                client raised.
        """
        client = self.client
        tally = Tally()
        problem = ""
        for _ in range(self.invalid_output_retries + 1):
            raw = client.call(request, tally)
            if raw.stop in ("truncated", "refused"):
                what = "was cut off" if raw.stop == "truncated" else "was refused"
                detail = f": {client.excerpt(raw.detail)}" if raw.detail else ""
                raise client.error(raw.stop, f"the output {what}{detail}", tally, request)
            try:
                value, loose = self.parse(raw)
            except InvalidOutput as exc:
                problem = str(exc)
                if exc.schema:
                    self._warn_format(problem, request)
                quoted = client.excerpt(_shown(raw))
                log.info("%s output rejected (%s): %s", client.role, problem, quoted)
                problem = f"{problem}; output: {quoted}"
                continue
            if loose:
                self._warn_format("JSON wrapped in other text", request)
            return Structured(
                value=value,
                usage=tally.usage,
                attempts=tally.calls,
                model=client.model_for(request),
            )
        raise client.error(
            "invalid_output",
            f"no valid {self.what} after {self.invalid_output_retries + 1} tries; last: {problem}",
            tally,
            request,
        )

    def _warn_format(self, problem: str, request: LLMRequest) -> None:
        # Once per caller: a server that ignores the format does so on every call.
        with self._lock:
            if self._warned_format:
                return
            self._warned_format = True
        client = self.client
        things = f"{self.what[:1].upper()}{self.what[1:]}s"
        client.warn(
            f"the {client.role} server at {client.base_url} (model "
            f"{client.model_for(request)!r}) returned output that does not follow the requested "
            f"{client.format_feature} ({problem}); it may not support it. {things} are "
            "validated on the client and retried."
        )


def _shown(raw: RawOutput) -> str | None:
    """The output as text, for messages."""
    return raw.text if raw.data is None else json.dumps(raw.data)
