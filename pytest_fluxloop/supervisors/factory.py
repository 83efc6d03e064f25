"""Build the supervisor a ``multi_turn.supervisor`` block describes.

Cheap to import: the ``openai``/``anthropic`` clients are imported only when such a
supervisor is created. Every configuration problem (missing key, missing package, bad mock
settings) is a :class:`~pytest_fluxloop.errors.ConfigError` raised here, before any case runs.
Key, base URL and SDK checks are the shared ones of :mod:`pytest_fluxloop.llm.connect`, told
which settings and variables belong to the supervisor.
"""

from __future__ import annotations

from typing import Any

from ..config.models import SupervisorConfig
from ..errors import ConfigError
from ..llm import connect
from .base import Supervisor
from .llm import ROLE, emit_warning
from .mock import MockSupervisor

__all__ = ["SUPERVISOR_KEY_ENV", "create_supervisor", "resolve_api_key"]

SUPERVISOR_KEY_ENV = "FLUXLOOP_SUPERVISOR_API_KEY"
#: The settings block named in configuration messages.
CONFIG_KEY = "multi_turn.supervisor"


def resolve_api_key(settings: SupervisorConfig) -> str:
    """The key to use: ``supervisor.api_key``, then ``FLUXLOOP_SUPERVISOR_API_KEY``, then the
    provider's own variable (``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY``).

    Raises:
        ConfigError: no key anywhere; the message names the places to set one.
    """
    return connect.resolve_api_key(
        settings.provider,
        settings.api_key,
        env=(SUPERVISOR_KEY_ENV,),
        config_key=CONFIG_KEY,
        role=ROLE,
        cli_flag="--supervisor-api-key",
        fallback="or use provider: mock",
    )


def _base_url(settings: SupervisorConfig) -> str | None:
    return connect.resolve_base_url(settings.provider, settings.base_url, config_key=CONFIG_KEY)


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
    common: dict[str, Any] = {
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
        connect.require_sdk("anthropic", role=ROLE)
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
