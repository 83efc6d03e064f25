"""Build the supervisor a ``multi_turn.supervisor`` block describes.

Cheap to import: the ``openai``/``anthropic`` clients are imported only when such a
supervisor is created. Every configuration problem (missing key, missing package, bad mock
settings) is a :class:`~pytest_fluxloop.errors.ConfigError` raised here, before any case runs.
"""

from __future__ import annotations

import importlib.util
import os

from ..config.models import SupervisorConfig
from ..errors import ConfigError
from .base import Supervisor
from .llm import emit_warning
from .mock import MockSupervisor

__all__ = ["SUPERVISOR_KEY_ENV", "create_supervisor", "resolve_api_key"]

SUPERVISOR_KEY_ENV = "FLUXLOOP_SUPERVISOR_API_KEY"
_PROVIDER_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
_PROVIDER_URL_ENV = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL"}


def resolve_api_key(settings: SupervisorConfig) -> str:
    """The key to use: ``supervisor.api_key``, then ``FLUXLOOP_SUPERVISOR_API_KEY``, then the
    provider's own variable (``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY``).

    Raises:
        ConfigError: no key anywhere; the message names the places to set one.
    """
    provider_env = _PROVIDER_KEY_ENV[settings.provider]
    for value in (
        settings.api_key,
        os.environ.get(SUPERVISOR_KEY_ENV),
        os.environ.get(provider_env),
    ):
        if value and value.strip():
            return value.strip()
    local = (
        " For a local server that needs no key (Ollama, vLLM, LM Studio), any placeholder "
        "value works."
        if settings.provider == "openai"
        else ""
    )
    raise ConfigError(
        f"the {settings.provider} supervisor needs an API key: set {provider_env} or "
        f"{SUPERVISOR_KEY_ENV} in the environment, pass --supervisor-api-key, or set "
        f"multi_turn.supervisor.api_key (or use provider: mock).{local}"
    )


def _base_url(settings: SupervisorConfig) -> str | None:
    url = settings.base_url or os.environ.get(_PROVIDER_URL_ENV[settings.provider]) or None
    if url is not None and not url.startswith(("http://", "https://")):
        raise ConfigError(
            f"multi_turn.supervisor.base_url must start with http:// or https://, got {url!r}"
        )
    return url


def create_supervisor(settings: SupervisorConfig, *, invalid_output_retries: int = 2) -> Supervisor:
    """Create the supervisor for ``settings`` (one instance, shared by all cases).

    Args:
        settings: the validated ``multi_turn.supervisor`` block.
        invalid_output_retries: extra LLM calls after output that is not a valid decision.

    Raises:
        ConfigError: a missing API key, a missing ``anthropic`` package, or mock settings that
            can't produce a decision.
    """
    if settings.provider == "mock":
        return MockSupervisor(settings.metadata)
    common = {
        "model": settings.model,
        "temperature": settings.temperature,
        "system_prompt": settings.system_prompt,
        "invalid_output_retries": invalid_output_retries,
    }
    if settings.provider == "openai":
        api_key = resolve_api_key(settings)
        from .openai_provider import OpenAISupervisor

        return OpenAISupervisor(api_key=api_key, base_url=_base_url(settings), **common)
    if settings.provider == "anthropic":
        if importlib.util.find_spec("anthropic") is None:
            raise ConfigError(
                "supervisor provider 'anthropic' needs the anthropic package: "
                "pip install 'pytest-fluxloop[anthropic]'"
            )
        if settings.temperature > 1.0:
            raise ConfigError(
                "multi_turn.supervisor.temperature must be between 0 and 1 for provider "
                f"anthropic, got {settings.temperature}"
            )
        api_key = resolve_api_key(settings)
        from .anthropic_provider import AnthropicSupervisor

        supervisor = AnthropicSupervisor(api_key=api_key, base_url=_base_url(settings), **common)
        if "temperature" in settings.model_fields_set and not supervisor.sends_temperature:
            # Never drop a setting silently: this anthropic SDK's messages.create has none.
            emit_warning(
                f"multi_turn.supervisor.temperature ({settings.temperature}) is not sent: the "
                "installed anthropic SDK's messages.create takes no temperature"
            )
        return supervisor
    raise ConfigError(  # pragma: no cover - the config model only allows the three above
        f"unknown supervisor provider {settings.provider!r} (use openai, anthropic or mock)"
    )
