"""Capture of the ``anthropic`` SDK's calls: one ``generation`` per call (see
:mod:`.capture_hooks` for where and how; this module knows the requests and replies of
Anthropic's API).

Names come from the URL path: ``anthropic.messages`` (``create``, ``stream=True``, the
``messages.stream()`` helper, beta messages), ``anthropic.complete`` (legacy). Usage:
``input_tokens`` (input), ``output_tokens`` (output), ``cache_read_input_tokens`` (cached),
as Anthropic reports them (its ``input_tokens`` does not include the cache reads). A stream's
usage is its ``message_start`` usage updated by ``message_delta`` (whose ``output_tokens``
is the running total, not an increment; ``message_start``'s is a placeholder, ignored).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..sdk.generation import token_counts
from .capture_hooks import hook_sdk, unhook_sdk
from .capture_provider import Provider, Reply, error_text

__all__ = ["AnthropicCapture", "anthropic_usage", "install", "uninstall"]

_WATCHED = (
    ("anthropic.resources.messages", "Messages", "create"),
    ("anthropic.resources.messages", "AsyncMessages", "create"),
    ("anthropic.resources.messages", "Messages", "stream"),
    ("anthropic.resources.messages", "AsyncMessages", "stream"),
)
"""Methods other instrumentations commonly wrap (reported in a notice when they do)."""


def anthropic_usage(usage: Any) -> dict[str, int | None] | None:
    """The token counts of an Anthropic ``usage`` object."""
    if not isinstance(usage, Mapping):
        return None
    return token_counts(
        usage.get("input_tokens"),
        usage.get("output_tokens"),
        usage.get("cache_read_input_tokens"),
    )


def _content_output(blocks: Any) -> Any:
    """A message's text when its content is text (and thinking), else its blocks."""
    if not isinstance(blocks, list):
        return None
    texts: list[str] = []
    for block in blocks:
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind not in ("thinking", "redacted_thinking"):
            return blocks
    return "".join(texts) if texts else None


class _AnthropicStream:
    """Folds a Messages (or legacy completions) stream."""

    def __init__(self, content: bool) -> None:
        self.content = content
        self.model: Any = None
        self.usage: dict[str, Any] = {}
        self.stop_reason: Any = None
        self.error: str | None = None
        self.blocks: dict[int, dict[str, Any]] = {}
        self.partial_json: dict[int, list[str]] = {}
        self.completion: list[str] = []

    def event(self, name: str | None, data: str) -> bool:
        obj = json.loads(data) if data else None
        if not isinstance(obj, Mapping):
            return False
        kind = obj.get("type") or name
        if kind == "message_start":
            message = obj.get("message")
            if isinstance(message, Mapping):
                self.model = message.get("model") or self.model
                usage = message.get("usage")
                if isinstance(usage, Mapping):
                    # Its output_tokens is a placeholder (1): only message_delta counts them,
                    # so a stream closed before it has an unknown (null) output count.
                    self._usage({k: v for k, v in usage.items() if k != "output_tokens"})
        elif kind == "message_delta":
            delta = obj.get("delta")
            if isinstance(delta, Mapping) and delta.get("stop_reason"):
                self.stop_reason = delta["stop_reason"]
            self._usage(obj.get("usage"))
        elif kind == "message_stop":
            return True
        elif kind == "error":
            self.error = error_text(obj.get("error") or obj)
            return True
        elif kind == "completion":  # the legacy /v1/complete stream
            if self.content:
                self.completion.append(str(obj.get("completion") or ""))
            self.model = obj.get("model") or self.model
            self.stop_reason = obj.get("stop_reason") or self.stop_reason
        elif self.content:
            self._block_event(kind, obj)
        return False

    def _usage(self, usage: Any) -> None:
        # message_delta's counts are running totals: the latest value of each key wins.
        if isinstance(usage, Mapping):
            self.usage.update({k: v for k, v in usage.items() if v is not None})

    def _block_event(self, kind: Any, obj: Mapping[str, Any]) -> None:
        index = obj.get("index")
        if not isinstance(index, int):
            return
        if kind == "content_block_start":
            block = obj.get("content_block")
            if isinstance(block, Mapping):
                self.blocks[index] = dict(block)
            return
        block_state = self.blocks.get(index)
        if block_state is None:
            return
        if kind == "content_block_delta":
            delta = obj.get("delta")
            if not isinstance(delta, Mapping):
                return
            delta_kind = delta.get("type")
            if delta_kind == "text_delta":
                block_state["text"] = str(block_state.get("text") or "") + str(
                    delta.get("text") or ""
                )
            elif delta_kind == "thinking_delta":
                block_state["thinking"] = str(block_state.get("thinking") or "") + str(
                    delta.get("thinking") or ""
                )
            elif delta_kind == "input_json_delta":
                self.partial_json.setdefault(index, []).append(str(delta.get("partial_json") or ""))
        elif kind == "content_block_stop":
            self._close_block(index)

    def _close_block(self, index: int) -> None:
        pieces = self.partial_json.pop(index, None)
        if pieces is None:
            return
        text = "".join(pieces)
        try:
            self.blocks[index]["input"] = json.loads(text) if text else {}
        except ValueError:  # cut short: keep what arrived
            self.blocks[index]["input"] = text

    def reply(self) -> Reply:
        output: Any = None
        if self.content:
            for index in list(self.partial_json):
                self._close_block(index)
            if self.completion:
                output = "".join(self.completion)
            elif self.blocks:
                output = _content_output([self.blocks[i] for i in sorted(self.blocks)])
        usage = anthropic_usage(self.usage) if self.usage else None
        return Reply(output, self.model, self.stop_reason, usage, self.error)


class AnthropicCapture(Provider):
    """The ``anthropic`` SDK's requests and replies."""

    name = "anthropic"
    content_keys = ("messages", "system", "prompt")
    last_events = frozenset({"error", "message_stop"})
    skipped_resources = frozenset(
        {"environments", "files", "models", "organizations", "sessions", "skills"}
    )
    skipped_actions = Provider.skipped_actions | {"batches"}

    def reduce(self, body: Any, content: bool) -> Reply:
        if not isinstance(body, Mapping):
            return Reply()
        if "completion" in body and "content" not in body:  # legacy /v1/complete
            return Reply(
                output=body.get("completion") if content else None,
                model=body.get("model"),
                finish_reason=body.get("stop_reason"),
            )
        return Reply(
            output=_content_output(body.get("content")) if content else None,
            model=body.get("model"),
            finish_reason=body.get("stop_reason"),
            usage=anthropic_usage(body.get("usage")),
        )

    def accumulator(self, content: bool) -> _AnthropicStream:
        return _AnthropicStream(content)


_PROVIDER = AnthropicCapture()


def install() -> list[str]:
    """Capture ``anthropic``'s calls from now on (idempotent: a second call hooks nothing and
    returns no notice). Returns notices about other instrumentations already wrapping it."""
    from anthropic import _base_client

    return hook_sdk(_PROVIDER, _base_client, _WATCHED)


def uninstall() -> None:
    """Stop capturing ``anthropic``'s calls (for tests)."""
    unhook_sdk(_PROVIDER.name)
