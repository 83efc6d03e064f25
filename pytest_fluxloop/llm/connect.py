"""Connecting to a provider: the API key, the base URL, the installed SDK, the client.

Every problem here is a :class:`~pytest_fluxloop.errors.ConfigError` raised before any case
runs, and names where to fix it. The caller says which settings it serves (``config_key``,
e.g. ``multi_turn.supervisor``) and which extra variables hold its key, so a supervisor and a
judge get messages about their own settings.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from ..errors import ConfigError
from .client import LLMClient

__all__ = [
    "PROVIDERS",
    "PROVIDER_KEY_ENV",
    "PROVIDER_URL_ENV",
    "create_client",
    "keys_not_needed",
    "require_sdk",
    "resolve_api_key",
    "resolve_base_url",
]

PROVIDERS = ("openai", "anthropic")
#: The provider's own API key variable, tried after the caller's own ones.
PROVIDER_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
#: The provider's own base URL variable, tried when no base URL is configured.
PROVIDER_URL_ENV = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL"}
_INSTALL = {"openai": "pip install openai", "anthropic": "pip install 'pytest-fluxloop[anthropic]'"}


_no_key_needed: ContextVar[str | None] = ContextVar("fluxloop_no_key_needed", default=None)

#: The key a client gets when none is set while :func:`keys_not_needed` is in effect.
PLACEHOLDER_KEY = "fluxloop-replay-needs-no-key"


@contextmanager
def keys_not_needed(why: str) -> Iterator[None]:
    """Within the block, a missing API key is no error: clients get :data:`PLACEHOLDER_KEY`
    (``why`` says what answers their calls instead, e.g. cassettes replaying every call)."""
    token = _no_key_needed.set(why)
    try:
        yield
    finally:
        _no_key_needed.reset(token)


def resolve_api_key(
    provider: str,
    explicit: str | None,
    *,
    env: Sequence[str] = (),
    config_key: str,
    role: str = "llm",
    cli_flag: str | None = None,
    fallback: str | None = None,
) -> str:
    """The key to use: ``explicit``, then each variable of ``env``, then the provider's own
    variable (``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY``). Surrounding spaces are dropped.

    Args:
        provider: ``openai`` or ``anthropic``.
        explicit: the key from the settings (or command line), if any.
        env: the caller's own variables, tried before the provider's.
        config_key: the settings block named in the message (``<config_key>.api_key``).
        role: who needs the key (``supervisor``, ``judge`` ...), for the message.
        cli_flag: the command-line option that sets the key, if there is one.
        fallback: another way out, named last (e.g. ``use provider: mock``).

    Within :func:`keys_not_needed`, a missing key gives :data:`PLACEHOLDER_KEY` instead.

    Raises:
        ConfigError: no key anywhere; the message names the places to set one.
    """
    provider_env = PROVIDER_KEY_ENV[provider]
    for value in (explicit, *(os.environ.get(name) for name in env), os.environ.get(provider_env)):
        if value and value.strip():
            return value.strip()
    if _no_key_needed.get() is not None:
        return PLACEHOLDER_KEY
    variables = " or ".join([provider_env, *env])
    flag = f"pass {cli_flag}, " if cli_flag else ""
    other = f" ({fallback})" if fallback else ""
    local = (
        " For a local server that needs no key (Ollama, vLLM, LM Studio), any placeholder "
        "value works."
        if provider == "openai"
        else ""
    )
    raise ConfigError(
        f"the {provider} {role} needs an API key: set {variables} in the environment, "
        f"{flag}or set {config_key}.api_key{other}.{local}"
    )


def resolve_base_url(provider: str, explicit: str | None, *, config_key: str) -> str | None:
    """``explicit``, else the provider's base URL variable, else None (the SDK's default).

    Raises:
        ConfigError: the URL has no ``http://`` / ``https://`` scheme.
    """
    url = explicit or os.environ.get(PROVIDER_URL_ENV[provider]) or None
    if url is not None and not url.startswith(("http://", "https://")):
        raise ConfigError(f"{config_key}.base_url must start with http:// or https://, got {url!r}")
    return url


def require_sdk(provider: str, *, role: str = "llm") -> None:
    """Check that the provider's SDK is installed, without importing it.

    Raises:
        ConfigError: it is not; the message says how to install it.
    """
    if importlib.util.find_spec(provider) is None:
        raise ConfigError(
            f"{role} provider '{provider}' needs the {provider} package: {_INSTALL[provider]}"
        )


def create_client(
    provider: str, *, api_key: str, base_url: str | None, **options: Any
) -> LLMClient:
    """A client for ``provider`` (``openai`` / ``anthropic``); imports its SDK only now.

    ``options`` are :class:`~.client.LLMClient` keywords (``model``, ``role``, retries ...).
    """
    if provider == "openai":
        from .openai_client import OpenAIClient

        return OpenAIClient(api_key=api_key, base_url=base_url, **options)
    if provider == "anthropic":
        from .anthropic_client import AnthropicClient

        return AnthropicClient(api_key=api_key, base_url=base_url, **options)
    raise ConfigError(f"unknown LLM provider {provider!r} (use {' or '.join(PROVIDERS)})")
