"""The shared LLM layer: provider clients and structured output for every role.

A role (the supervisor that plays the user, a judge, an input generator ...) writes its
prompt and schema as an :class:`LLMRequest`, and a parse function for its output type; this
package does the rest:

* :mod:`.types` — the request, the reduced raw output, token usage;
* :mod:`.client` — the client base: transport retries, Retry-After, the fatal latch;
* :mod:`.openai_client`, :mod:`.anthropic_client` — the providers;
* :mod:`.structured` — validate on the client, retry invalid output (bounded);
* :mod:`.parsing` — JSON extraction, pydantic-model parse functions;
* :mod:`.classify`, :mod:`.retry` — error codes and retry timing;
* :mod:`.errors` — :class:`LLMError`, its codes, the format warning;
* :mod:`.connect` — API key / base URL resolution, the SDK check, :func:`create_client`.

Importing it is cheap: ``openai`` / ``anthropic`` load only when such a client is created.
This package sits below every role: it imports nothing of the engine, the supervisors, the
config models or pytest.
"""

from __future__ import annotations

from .anthropic_client import AnthropicClient
from .client import LLMClient
from .connect import (
    PROVIDER_KEY_ENV,
    PROVIDER_URL_ENV,
    PROVIDERS,
    create_client,
    require_sdk,
    resolve_api_key,
    resolve_base_url,
)
from .errors import ERROR_CODES, FATAL_CODES, LLMError, LLMOutputWarning, emit_warning
from .openai_client import OpenAIClient
from .parsing import InvalidOutput, ParseFn, load_json, output_json, parse_model
from .structured import Structured, StructuredCaller
from .types import LLMRequest, RawOutput, Tally, TokenUsage

__all__ = [
    "ERROR_CODES",
    "FATAL_CODES",
    "PROVIDERS",
    "PROVIDER_KEY_ENV",
    "PROVIDER_URL_ENV",
    "AnthropicClient",
    "InvalidOutput",
    "LLMClient",
    "LLMError",
    "LLMOutputWarning",
    "LLMRequest",
    "OpenAIClient",
    "ParseFn",
    "RawOutput",
    "Structured",
    "StructuredCaller",
    "Tally",
    "TokenUsage",
    "create_client",
    "emit_warning",
    "load_json",
    "output_json",
    "parse_model",
    "require_sdk",
    "resolve_api_key",
    "resolve_base_url",
]
