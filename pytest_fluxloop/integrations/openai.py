"""Capture of the ``openai`` SDK's calls: one ``generation`` per call (see :mod:`.capture_hooks`
for where and how; this module knows the requests and replies of OpenAI's API).

Names come from the URL path: ``openai.chat.completions``, ``openai.responses``,
``openai.completions``, ``openai.embeddings``, ``openai.images.generations`` ... Usage:
``prompt_tokens``/``input_tokens`` (input), ``completion_tokens``/``output_tokens``
(output), ``*_tokens_details.cached_tokens`` (cached), ``*_tokens_details.reasoning_tokens``
(reasoning). A chat completion streamed without ``stream_options.include_usage`` has no
usage: it is recorded as missing (null), never as zero, and the request is never changed to
ask for it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..sdk.generation import token_counts
from .capture_hooks import hook_sdk, unhook_sdk
from .capture_provider import Provider, Reply, error_text, one_or_list

__all__ = ["OpenAICapture", "install", "openai_usage", "uninstall"]

_WATCHED = (
    ("openai.resources.chat.completions", "Completions", "create"),
    ("openai.resources.chat.completions", "AsyncCompletions", "create"),
    ("openai.resources.responses", "Responses", "create"),
    ("openai.resources.responses", "AsyncResponses", "create"),
)
"""Methods other instrumentations commonly wrap (reported in a notice when they do)."""


def openai_usage(usage: Any) -> dict[str, int | None] | None:
    """The token counts of an OpenAI ``usage`` object (chat, responses or embeddings)."""
    if not isinstance(usage, Mapping):
        return None
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens"))
    inputs = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    outputs = usage.get("completion_tokens_details") or usage.get("output_tokens_details")
    return token_counts(
        prompt,
        completion,
        inputs.get("cached_tokens") if isinstance(inputs, Mapping) else None,
        outputs.get("reasoning_tokens") if isinstance(outputs, Mapping) else None,
        usage.get("total_tokens"),
    )


def _message_output(message: Any) -> Any:
    """A chat message's text; with tool calls or a refusal, the dict of what it holds."""
    if not isinstance(message, Mapping):
        return None
    extra = {
        key: message[key]
        for key in ("refusal", "tool_calls", "function_call", "audio")
        if message.get(key)
    }
    if not extra:
        return message.get("content")
    return {"content": message.get("content"), **extra}


def _response_output(items: Any) -> Any:
    """A Responses API ``output``: its text when it holds only messages (and reasoning),
    else the items themselves (function calls, tool calls ...)."""
    if not isinstance(items, list):
        return None
    texts: list[str] = []
    for item in items:
        if not isinstance(item, Mapping):
            return items
        kind = item.get("type")
        if kind == "reasoning":
            continue
        if kind != "message":
            return items
        for part in item.get("content") or ():
            if isinstance(part, Mapping) and part.get("type") == "output_text":
                texts.append(str(part.get("text") or ""))
            elif isinstance(part, Mapping) and part.get("type") == "refusal":
                return items
    return "".join(texts) if texts else None


def _response_reply(body: Any, content: bool) -> Reply:
    """The reply of a Responses API ``response`` object."""
    if not isinstance(body, Mapping):
        return Reply()
    status = body.get("status")
    details = body.get("incomplete_details")
    reason = details.get("reason") if isinstance(details, Mapping) else None
    error = body.get("error")
    return Reply(
        output=_response_output(body.get("output")) if content else None,
        model=body.get("model"),
        finish_reason=reason or status,
        usage=openai_usage(body.get("usage")),
        error=error_text(error) if error else None,
    )


class _Choice:
    """One streamed chat choice, as its deltas arrive."""

    __slots__ = ("content", "finish_reason", "refusal", "tools")

    def __init__(self) -> None:
        self.content: list[str] = []
        self.refusal: list[str] = []
        self.tools: dict[int, dict[str, Any]] = {}
        self.finish_reason: Any = None

    def add(self, choice: Mapping[str, Any], content: bool) -> None:
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
        if not content:
            return
        delta = choice.get("delta")
        if not isinstance(delta, Mapping):
            text = choice.get("text")  # a legacy completions chunk
            if isinstance(text, str):
                self.content.append(text)
            return
        if delta.get("content"):
            self.content.append(str(delta["content"]))
        if delta.get("refusal"):
            self.refusal.append(str(delta["refusal"]))
        for call in delta.get("tool_calls") or ():
            if not isinstance(call, Mapping):
                continue
            index = int(call.get("index") or 0)
            slot = self.tools.get(index)
            if slot is None:
                slot = self.tools[index] = {
                    "id": None,
                    "type": "function",
                    "function": {"name": "", "arguments": ""},
                }
            if call.get("id"):
                slot["id"] = call["id"]
            function = call.get("function")
            if isinstance(function, Mapping):
                slot["function"]["name"] += str(function.get("name") or "")
                slot["function"]["arguments"] += str(function.get("arguments") or "")

    def output(self) -> Any:
        message: dict[str, Any] = {"content": "".join(self.content) if self.content else None}
        if self.refusal:
            message["refusal"] = "".join(self.refusal)
        if self.tools:
            message["tool_calls"] = [self.tools[i] for i in sorted(self.tools)]
        return _message_output(message)


class _OpenAIStream:
    """Folds a chat completions, completions or Responses API stream."""

    def __init__(self, content: bool) -> None:
        self.content = content
        self.model: Any = None
        self.usage: dict[str, int | None] | None = None
        self.error: str | None = None
        self.choices: dict[int, _Choice] = {}
        self.text: list[str] = []
        self.final: Reply | None = None

    def event(self, name: str | None, data: str) -> bool:
        if data.startswith("[DONE]"):
            return True
        obj = json.loads(data)
        if not isinstance(obj, Mapping):
            return False
        kind = obj.get("type")
        if isinstance(kind, str) and (kind.startswith("response.") or kind == "error"):
            return self._response_event(kind, obj)
        if obj.get("error"):  # what the SDK raises as an APIError mid-stream
            self.error = error_text(obj["error"])
            return True
        if obj.get("model"):
            self.model = obj["model"]
        if obj.get("usage"):
            self.usage = openai_usage(obj["usage"])
        for choice in obj.get("choices") or ():
            if isinstance(choice, Mapping):
                index = choice.get("index")
                index = index if isinstance(index, int) else 0
                slot = self.choices.get(index)
                if slot is None:
                    slot = self.choices[index] = _Choice()
                slot.add(choice, self.content)
        return False

    def _response_event(self, kind: str, obj: Mapping[str, Any]) -> bool:
        if kind == "error":
            self.error = error_text(obj)
            return True
        response = obj.get("response")
        if isinstance(response, Mapping) and response.get("model"):
            self.model = response["model"]
        if kind == "response.output_text.delta":
            if self.content:
                self.text.append(str(obj.get("delta") or ""))
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            self.final = _response_reply(response, self.content)
            return True
        return False

    def reply(self) -> Reply:
        if self.final is not None:
            final = self.final
            return final._replace(model=final.model or self.model, error=final.error or self.error)
        if self.choices:
            ordered = [self.choices[i] for i in sorted(self.choices)]
            output = one_or_list([c.output() for c in ordered]) if self.content else None
            reasons = one_or_list([c.finish_reason for c in ordered])
            return Reply(output, self.model, reasons, self.usage, self.error)
        output = "".join(self.text) if self.text and self.content else None
        return Reply(output, self.model, None, self.usage, self.error)


class OpenAICapture(Provider):
    """The ``openai`` SDK's requests and replies."""

    name = "openai"
    content_keys = ("messages", "input", "instructions", "prompt", "suffix", "prediction")
    last_events = frozenset(
        {"error", "response.completed", "response.incomplete", "response.failed"}
    )
    skipped_resources = frozenset(
        {
            "assistants",
            "batches",
            "containers",
            "conversations",
            "evals",
            "files",
            "fine_tuning",
            "models",
            "organization",
            "realtime",
            "threads",
            "uploads",
            "vector_stores",
            "webhooks",
        }
    )

    def reduce(self, body: Any, content: bool) -> Reply:
        if not isinstance(body, Mapping):
            return Reply()
        if body.get("object") == "response":
            return _response_reply(body, content)
        usage = openai_usage(body.get("usage"))
        choices = body.get("choices")
        if not isinstance(choices, list):  # embeddings, images ...: no text reply
            return Reply(model=body.get("model"), usage=usage)
        outputs: list[Any] = []
        reasons: list[Any] = []
        for choice in choices:
            if not isinstance(choice, Mapping):
                continue
            reasons.append(choice.get("finish_reason"))
            if "message" in choice:
                outputs.append(_message_output(choice["message"]))
            else:
                outputs.append(choice.get("text"))
        return Reply(
            output=one_or_list(outputs) if content else None,
            model=body.get("model"),
            finish_reason=one_or_list(reasons),
            usage=usage,
        )

    def accumulator(self, content: bool) -> _OpenAIStream:
        return _OpenAIStream(content)


_PROVIDER = OpenAICapture()


def install() -> list[str]:
    """Capture ``openai``'s calls from now on (idempotent: a second call hooks nothing and
    returns no notice). Returns notices about other instrumentations already wrapping it."""
    from openai import _base_client

    return hook_sdk(_PROVIDER, _base_client, _WATCHED)


def uninstall() -> None:
    """Stop capturing ``openai``'s calls (for tests)."""
    unhook_sdk(_PROVIDER.name)
