"""What the LangChain handler records of LangChain's objects: names, messages, usage.

Messages become ``{"role", "content"}`` dicts (plus ``name``, ``tool_calls``,
``tool_call_id`` when set), the shape the provider capture records, instead of the full
pydantic dump of every field; documents become ``{"page_content", "metadata"}``; anything
else goes through :func:`~pytest_fluxloop.jsonsafe.to_jsonable`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult
from langchain_core.prompt_values import ChatPromptValue, PromptValue

from ..jsonsafe import to_jsonable
from ..sdk.generation import token_counts

__all__ = [
    "HIDDEN_TAG",
    "jsonable",
    "message_json",
    "model_of",
    "parameters_of",
    "reply_of",
    "requested_model",
    "run_metadata",
    "run_name",
    "usage_of",
]

HIDDEN_TAG = "langsmith:hidden"
"""The tag LangChain and LangGraph put on their internal runs."""

_MAX_NESTING = 8
"""How deep :func:`jsonable` looks for messages and documents (then to_jsonable as is)."""

_ROLES = {
    "human": "user",
    "HumanMessageChunk": "user",
    "ai": "assistant",
    "AIMessageChunk": "assistant",
    "system": "system",
    "SystemMessageChunk": "system",
    "tool": "tool",
    "ToolMessageChunk": "tool",
    "function": "function",
    "FunctionMessageChunk": "function",
    "remove": "remove",
}

_LANGGRAPH_KEYS = ("langgraph_node", "langgraph_step")
_PARAMETERS_SKIPPED = frozenset({"_type", "model", "model_name", "stream", "stop"})


def run_name(name: Any, serialized: Mapping[str, Any] | None, default: str) -> str:
    """The run's name as LangChain's own tracers compute it."""
    if isinstance(name, str) and name:
        return name
    if serialized:
        if isinstance(serialized.get("name"), str):
            return str(serialized["name"])
        ids = serialized.get("id")
        if isinstance(ids, list) and ids and isinstance(ids[-1], str):
            return ids[-1]
    return default


def run_metadata(
    kind: str,
    run_id: Any,
    tags: list[str] | None,
    metadata: Mapping[str, Any] | None,
    run_type: Any = None,
) -> dict[str, Any]:
    """The ``metadata`` of a run's observations: its kind, LangChain run id and LangGraph
    node and step (when it is, or runs inside, a graph node)."""
    meta: dict[str, Any] = {"kind": kind, "framework": "langchain", "run_id": str(run_id)}
    if isinstance(run_type, str) and run_type:
        meta["run_type"] = run_type
    for key in _LANGGRAPH_KEYS:
        if metadata and metadata.get(key) is not None:
            meta[key] = to_jsonable(metadata[key])
    visible_tags = [t for t in tags or () if isinstance(t, str)]
    if visible_tags:
        meta["tags"] = visible_tags
    return meta


def message_json(message: BaseMessage) -> dict[str, Any]:
    """A message as ``{"role", "content", ...}``."""
    role = getattr(message, "role", None) if message.type in ("chat", "ChatMessageChunk") else None
    out: dict[str, Any] = {
        "role": role or _ROLES.get(message.type, message.type),
        "content": to_jsonable(message.content),
    }
    if message.name:
        out["name"] = message.name
    tool_calls = getattr(message, "tool_calls", None)
    if tool_calls:
        out["tool_calls"] = to_jsonable(tool_calls)
    tool_call_id = getattr(message, "tool_call_id", None)
    if tool_call_id:
        out["tool_call_id"] = tool_call_id
    if getattr(message, "status", None) == "error":
        out["status"] = "error"
    return out


def jsonable(value: Any) -> Any:
    """``value`` as JSON data, messages and documents in their short form."""
    return to_jsonable(_shorten(value, 0))


def _shorten(value: Any, depth: int) -> Any:
    if isinstance(value, BaseMessage):
        return message_json(value)
    if isinstance(value, Document):
        doc: dict[str, Any] = {"page_content": value.page_content, "metadata": value.metadata}
        if value.id is not None:
            doc["id"] = value.id
        return doc
    if isinstance(value, ChatPromptValue):
        return {"messages": [message_json(m) for m in value.messages]}
    if isinstance(value, PromptValue):
        return value.to_string()
    if depth < _MAX_NESTING:
        if isinstance(value, Mapping):
            return {k: _shorten(v, depth + 1) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [_shorten(v, depth + 1) for v in value]
    return value


def parameters_of(invocation_params: Any) -> dict[str, Any]:
    """The request settings of a model run (temperature, max_tokens, tools ...)."""
    if not isinstance(invocation_params, Mapping):
        return {}
    params = {k: v for k, v in invocation_params.items() if k not in _PARAMETERS_SKIPPED}
    if invocation_params.get("stop") is not None:
        params["stop"] = invocation_params["stop"]
    return params


def requested_model(invocation_params: Any, metadata: Mapping[str, Any] | None) -> Any:
    """The model a run asked for (LangSmith's ``ls_model_name``, or the request's)."""
    if metadata and metadata.get("ls_model_name"):
        return metadata["ls_model_name"]
    if isinstance(invocation_params, Mapping):
        return invocation_params.get("model") or invocation_params.get("model_name")
    return None


def _generations(response: LLMResult) -> list[Any]:
    return [g for batch in response.generations or () for g in batch]


def reply_of(response: LLMResult) -> tuple[Any, Any]:
    """The reply (text, content blocks, or content and tool calls; a list for several
    choices) and its finish reason."""
    replies: list[Any] = []
    finish_reason: Any = None
    for gen in _generations(response):
        message = getattr(gen, "message", None)
        if isinstance(message, BaseMessage):
            tool_calls = getattr(message, "tool_calls", None)
            content = jsonable(message.content)
            if tool_calls:
                replies.append({"content": content, "tool_calls": to_jsonable(tool_calls)})
            else:
                replies.append(content)
            meta = message.response_metadata or {}
            finish_reason = finish_reason or meta.get("finish_reason") or meta.get("stop_reason")
        else:
            replies.append(gen.text)
        info = gen.generation_info or {}
        finish_reason = finish_reason or info.get("finish_reason") or info.get("stop_reason")
    output = replies[0] if len(replies) == 1 else replies
    return output, finish_reason


def model_of(response: LLMResult) -> Any:
    """The model the response names, if it names one."""
    for gen in _generations(response):
        message = getattr(gen, "message", None)
        meta = getattr(message, "response_metadata", None) or {}
        model = meta.get("model_name") or meta.get("model")
        if model:
            return model
    llm_output = response.llm_output or {}
    return llm_output.get("model_name") or llm_output.get("model")


def usage_of(response: LLMResult) -> dict[str, int | None] | None:
    """The call's token counts: the reply's ``usage_metadata``, else ``llm_output``'s
    ``token_usage`` (OpenAI's names) or ``usage`` (Anthropic's); None when neither is there."""
    for gen in _generations(response):
        usage = getattr(getattr(gen, "message", None), "usage_metadata", None)
        if isinstance(usage, Mapping):
            return token_counts(
                usage.get("input_tokens"),
                usage.get("output_tokens"),
                _detail(usage, "input_token_details", "cache_read"),
                _detail(usage, "output_token_details", "reasoning"),
                usage.get("total_tokens"),
            )
    llm_output = response.llm_output or {}
    usage = llm_output.get("token_usage") or llm_output.get("usage")
    if not isinstance(usage, Mapping) or not usage:
        return None
    cached = _detail(usage, "prompt_tokens_details", "cached_tokens")
    return token_counts(
        usage.get("prompt_tokens", usage.get("input_tokens")),
        usage.get("completion_tokens", usage.get("output_tokens")),
        cached if cached is not None else usage.get("cache_read_input_tokens"),
        _detail(usage, "completion_tokens_details", "reasoning_tokens"),
        usage.get("total_tokens"),
    )


def _detail(usage: Mapping[str, Any], group: str, key: str) -> Any:
    details = usage.get(group)
    return details.get(key) if isinstance(details, Mapping) else None
