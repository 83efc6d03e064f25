"""The SDK's own settings: ``configure()``, ``get_config()``, ``reset_config()``, ``load_env()``.

These are the names (and the ``FLUXLOOP_*`` environment variables) of the earlier FluxLoop
SDK, so agents written for it keep working. They configure only what runs inside the agent's
process (the decorators, :func:`~pytest_fluxloop.sdk.instrument`, argument recording); the
experiment itself is configured by ``fluxloop.yaml`` (:mod:`pytest_fluxloop.config`).

The config is built on first use, not at import: importing the SDK never reads files and
never fails on a bad environment value. It is built from the ``FLUXLOOP_*`` variables of the
environment and, for a variable the environment does not set, of a ``.env`` file in the
current directory (the recording workflow puts ``FLUXLOOP_RECORD_ARGS=true`` there). That
file is only read: ``os.environ`` is not changed (:func:`load_env` does that, on request).

Whether argument recording is on is decided once and cached (:data:`RECORDING`), so an
``@agent`` call with recording off costs one attribute check; every function here that can
change the answer (:func:`configure`, :func:`reset_config`, :func:`load_env`, the recording
switch) drops the cached answer.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from stat import S_ISREG
from typing import Any, Literal
from urllib.parse import urlparse

__all__ = [
    "DEFAULT_RECORDING_BACKUPS",
    "DEFAULT_RECORDING_MAX_BYTES",
    "ENV_VARS",
    "RECORDING",
    "SDKConfig",
    "configure",
    "get_config",
    "is_enabled",
    "load_env",
    "recording_enabled",
    "reset_config",
]

ENV_VARS: Mapping[str, str] = {
    "api_key": "FLUXLOOP_API_KEY",
    "enabled": "FLUXLOOP_ENABLED",
    "debug": "FLUXLOOP_DEBUG",
    "use_collector": "FLUXLOOP_USE_COLLECTOR",
    "offline_store_enabled": "FLUXLOOP_OFFLINE_ENABLED",
    "offline_store_dir": "FLUXLOOP_OFFLINE_DIR",
    "record_args": "FLUXLOOP_RECORD_ARGS",
    "recording_file": "FLUXLOOP_RECORDING_FILE",
    "record_allow": "FLUXLOOP_RECORD_ALLOW",
    "record_deny": "FLUXLOOP_RECORD_DENY",
    "recording_max_bytes": "FLUXLOOP_RECORDING_MAX_BYTES",
    "recording_backups": "FLUXLOOP_RECORDING_BACKUPS",
    "batch_size": "FLUXLOOP_BATCH_SIZE",
    "flush_interval": "FLUXLOOP_FLUSH_INTERVAL",
    "max_queue_size": "FLUXLOOP_MAX_QUEUE_SIZE",
    "timeout": "FLUXLOOP_TIMEOUT",
    "sample_rate": "FLUXLOOP_SAMPLE_RATE",
    "service_name": "FLUXLOOP_SERVICE_NAME",
    "environment": "FLUXLOOP_ENVIRONMENT",
}
"""Config key -> the environment variable its default is read from (``collector_url`` has
none, as in the earlier SDK)."""

DEFAULT_RECORDING_MAX_BYTES = 50 * 1024 * 1024
"""``recording_max_bytes`` by default: 50 MiB."""
DEFAULT_RECORDING_BACKUPS = 3
"""``recording_backups`` by default."""

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
_MASK = "***"


def _to_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ValueError(f"{key} must be true or false, got {value!r}")


def _to_int(key: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{key} must be an integer, got {value!r}")


def _to_float(key: str, value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{key} must be a number, got {value!r}")


def _to_optional_str(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str):
        # An empty variable (FLUXLOOP_RECORDING_FILE=) means "not set", as unset does.
        return value if value.strip() else None
    raise ValueError(f"{key} must be a string, got {type(value).__name__}")


def _to_names(key: str, value: Any) -> tuple[str, ...]:
    """Argument names (``message``, ``data.token``): a comma-separated string or a list."""
    if value is None:
        return ()
    if isinstance(value, str):
        items: Iterable[Any] = value.split(",")
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = value
    else:
        raise ValueError(f"{key} must be argument names, got {type(value).__name__}")
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"{key} must be argument names, got {item!r}")
        name = item.strip()
        if not name:
            continue  # "a,,b" and a trailing comma are harmless
        if any(not part.strip() for part in name.split(".")):
            raise ValueError(f"{key}: {name!r} is not an argument name or a dotted path")
        names.append(name)
    return tuple(names)


def _to_optional_names(key: str, value: Any) -> tuple[str, ...] | None:
    # No names (unset, FLUXLOOP_RECORD_ALLOW= or an empty list) means "no allowlist": an
    # empty allowlist that blanks every argument would only ever be a mistake.
    return _to_names(key, value) or None


@dataclasses.dataclass(repr=False)
class SDKConfig:
    """The SDK settings (the earlier FluxLoop SDK's keys and defaults).

    Used by this SDK: ``enabled`` (False: decorators and :func:`instrument` record nothing),
    ``offline_store_enabled`` + ``offline_store_dir`` (where a standalone
    :func:`instrument` trace is written; unset by default, unlike the earlier SDK, so
    nothing is written unless asked), and argument recording (see
    :mod:`pytest_fluxloop.sdk.recording`): ``record_args`` (on/off), ``recording_file``
    (default ``recordings/args_recording.jsonl``), ``record_allow`` (only these arguments
    are kept, the others replaced by the redaction marker; None: all), ``record_deny``
    (these are replaced by the marker; dotted paths such as ``data.token`` reach into
    dicts), ``recording_max_bytes`` (the file's size cap, 0: none) and
    ``recording_backups`` (rotated files kept: ``<file>.1`` ... ``<file>.N``).

    Used by ``FluxLoopClient(storage="http")`` only (nothing else sends over the network):
    ``collector_url`` and ``api_key`` (the defaults of its arguments), ``flush_interval``
    (how long a batch waits for more traces), ``max_queue_size``, ``timeout`` (one request),
    ``service_name`` and ``environment`` (the batches' ``source``). Accepted and validated
    for compatibility but not used: ``use_collector``, ``batch_size``, ``sample_rate``,
    ``debug``.

    Values are coerced on construction (``"true"`` -> True, ``"10"`` -> 10) and validated:
    ``sample_rate`` in 0..1, ``batch_size`` in 1..100, ``collector_url`` an absolute URL
    (trailing ``/`` removed), ``recording_max_bytes`` and ``recording_backups`` not
    negative; ``record_allow``/``record_deny`` take a list or a comma-separated string.
    ``api_key`` is masked in ``repr()``/``str()``.
    """

    collector_url: str | None = None
    api_key: str | None = None
    enabled: bool = True
    debug: bool = False
    use_collector: bool = True
    offline_store_enabled: bool = True
    offline_store_dir: str | None = None
    record_args: bool = False
    recording_file: str | None = None
    record_allow: tuple[str, ...] | None = None
    record_deny: tuple[str, ...] = ()
    recording_max_bytes: int = DEFAULT_RECORDING_MAX_BYTES
    recording_backups: int = DEFAULT_RECORDING_BACKUPS
    batch_size: int = 10
    flush_interval: float = 5.0
    max_queue_size: int = 1000
    timeout: float = 10.0
    sample_rate: float = 1.0
    service_name: str | None = None
    environment: str | None = "development"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            coerce = _COERCE[f.name]
            setattr(self, f.name, coerce(f.name, getattr(self, f.name)))
        if self.collector_url is not None:
            self.collector_url = _check_url(self.collector_url)
        if not 0 <= self.sample_rate <= 1:
            raise ValueError(f"sample_rate must be between 0 and 1, got {self.sample_rate}")
        if not 1 <= self.batch_size <= 100:
            raise ValueError(f"batch_size must be between 1 and 100, got {self.batch_size}")
        if self.recording_max_bytes < 0:
            raise ValueError(
                f"recording_max_bytes must be 0 (no cap) or more, got {self.recording_max_bytes}"
            )
        if self.recording_backups < 0:
            raise ValueError(f"recording_backups must be 0 or more, got {self.recording_backups}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SDKConfig:
        """Defaults overridden by the ``FLUXLOOP_*`` variables of ``environ`` (default
        ``os.environ``). A bad value is a ValueError naming its variable."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for key, var in ENV_VARS.items():
            raw = env.get(var)
            if raw is None:
                continue
            try:
                values[key] = _COERCE[key](key, raw)
            except ValueError as exc:
                raise ValueError(f"environment variable {var}: {exc}") from None
        try:
            return cls(**values)
        except ValueError as exc:
            raise ValueError(f"FLUXLOOP_* environment variables: {exc}") from None

    def to_dict(self, *, reveal_secrets: bool = False) -> dict[str, Any]:
        """The settings as a dict; ``api_key`` is masked unless ``reveal_secrets``."""
        data = dataclasses.asdict(self)
        if not reveal_secrets and data["api_key"] is not None:
            data["api_key"] = _MASK
        return data

    def __repr__(self) -> str:
        # Hand-written so the api_key can never reach a log line or a traceback.
        fields = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"SDKConfig({fields})"

    __str__ = __repr__


_COERCE: dict[str, Callable[[str, Any], Any]] = {}
for _field in dataclasses.fields(SDKConfig):
    _COERCE[_field.name] = {
        "bool": _to_bool,
        "int": _to_int,
        "float": _to_float,
    }.get(str(_field.type), _to_optional_str)
del _field
_COERCE["record_allow"] = _to_optional_names
_COERCE["record_deny"] = _to_names

KNOWN_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(SDKConfig))
"""Every key :func:`configure` accepts."""


def _check_url(value: str) -> str:
    try:
        parsed = urlparse(value)
        ok = bool(parsed.scheme and parsed.netloc)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"collector_url must be an absolute URL such as https://collector.example.com, "
            f"got {value!r}"
        )
    return value.rstrip("/")


_lock = threading.RLock()
_config: SDKConfig | None = None

# Set by enable_recording() (a path) / disable_recording() (False); None: follow the config.
# Kept here, not in recording.py, so configure() can hand control back to the config.
_recording_override: Path | Literal[False] | None = None

# The cwd .env's FLUXLOOP_* values, by (file, mtime, size): a config rebuilt while the file
# is unchanged does not read it again.
_dotenv_cache: tuple[tuple[str, int, int], dict[str, str]] | None = None


class RecordingSwitch:
    """The cached answer to "is argument recording on?" (:data:`RECORDING`).

    ``on`` is None until the first recording call decides (:func:`recording_enabled`), then
    True or False until something that can change the answer drops it again. ``@agent``
    reads the attribute directly: with recording off that one comparison is its whole cost.
    """

    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on: bool | None = None


RECORDING = RecordingSwitch()
"""The process's recording switch; read ``RECORDING.on``, decide with
:func:`recording_enabled`."""


def _dotenv_values() -> dict[str, str]:
    """The ``FLUXLOOP_*`` values of ``.env`` in the current directory (empty: no such file).

    Only read: the caller gives the real environment precedence, and ``os.environ`` is left
    alone so a production process never gains the file's other variables (API keys ...)
    because it called an agent.
    """
    global _dotenv_cache
    path = Path.cwd() / ".env"
    try:
        stat = path.stat()
    except OSError:
        return {}
    if not S_ISREG(stat.st_mode):
        return {}
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    cached = _dotenv_cache
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        # Imported here: only a process with a .env file pays for python-dotenv.
        from dotenv import dotenv_values

        parsed = dotenv_values(path)
    except (ImportError, OSError, ValueError):
        # Unreadable (permissions, not UTF-8): settings come from the environment alone,
        # as without a file. get_config() runs inside decorated calls and must not fail.
        return {}
    values = {
        name: value
        for name, value in parsed.items()
        if name.startswith("FLUXLOOP_") and value is not None
    }
    _dotenv_cache = (key, values)
    return values


def _from_environment() -> SDKConfig:
    """The config of the environment, a cwd ``.env`` filling the variables it does not set."""
    environ: Mapping[str, str] = os.environ
    file_values = _dotenv_values()
    if file_values:
        environ = {**file_values, **os.environ}  # a variable already set wins
    return SDKConfig.from_env(environ)


def _invalidate_recording() -> None:
    """Drop the cached recording decision (callers hold ``_lock``)."""
    RECORDING.on = None


def get_config() -> SDKConfig:
    """The current SDK settings (built on first call from the ``FLUXLOOP_*`` environment
    variables, and a ``.env`` in the current directory for those the environment lacks)."""
    global _config
    config = _config
    if config is None:
        with _lock:
            if _config is None:
                _config = _from_environment()
            config = _config
    return config


def configure(**kwargs: Any) -> SDKConfig:
    """Change SDK settings; returns the new config. Keys are :class:`SDKConfig`'s fields.

    An unknown key, or a value out of range, is a ValueError and changes nothing. Passing
    ``record_args`` or ``recording_file`` makes the config decide argument recording again
    (undoing an earlier :func:`~pytest_fluxloop.sdk.enable_recording` /
    :func:`~pytest_fluxloop.sdk.disable_recording`).

    Example::

        fluxloop.configure(offline_store_dir="traces", record_args=True)
    """
    global _config, _recording_override
    unknown = sorted(set(kwargs) - set(KNOWN_KEYS))
    if unknown:
        raise ValueError(
            f"unknown configuration key(s): {', '.join(unknown)}; "
            f"known keys: {', '.join(KNOWN_KEYS)}"
        )
    with _lock:
        config = dataclasses.replace(get_config(), **kwargs)
        _config = config
        if "record_args" in kwargs or "recording_file" in kwargs:
            _recording_override = None
        _invalidate_recording()
    return config


def reset_config() -> SDKConfig:
    """Rebuild the settings from the environment (and a cwd ``.env``), dropping
    :func:`configure` changes and any :func:`~pytest_fluxloop.sdk.enable_recording` /
    ``disable_recording`` call."""
    global _config, _recording_override
    with _lock:
        _invalidate_recording()
        _recording_override = None
        _config = _from_environment()
        return _config


def is_enabled() -> bool:
    """Whether the decorators record (``enabled``). Called only inside a trace.

    A bad ``FLUXLOOP_*`` value is reported by :func:`get_config`, not by every decorated
    call: until it is fixed, recording stays on.
    """
    config = _config
    if config is not None:
        return config.enabled
    try:
        return get_config().enabled
    except ValueError:
        return True


def recording_enabled() -> bool:
    """Whether argument recording is on: :func:`recording_override` if set, else
    ``record_args`` of the config. Decided once, then cached in :data:`RECORDING`.

    Raises:
        ValueError: a ``FLUXLOOP_*`` value is bad (the answer is cached as False, so the
            error is raised once; the recording module logs it).
    """
    on = RECORDING.on
    if on is not None:
        return on
    with _lock:
        # Under the lock: configure() cannot drop the answer between computing and caching.
        override = _recording_override
        if override is not None:
            on = override is not False
        else:
            RECORDING.on = False  # if get_config() raises, stay off until the next change
            on = get_config().record_args
        RECORDING.on = on
    return on


def recording_override() -> Path | Literal[False] | None:
    """The explicit recording switch: a file (on), False (off), None (follow the config)."""
    return _recording_override


def set_recording_override(value: Path | Literal[False] | None) -> None:
    """Set the switch :func:`recording_override` returns (used by the recording module)."""
    global _recording_override
    with _lock:
        _recording_override = value
        _invalidate_recording()


def load_env(
    dotenv_path: str | os.PathLike[str] | None = None,
    *,
    override: bool = False,
    refresh_config: bool = True,
) -> bool:
    """Load environment variables from a ``.env`` file (with python-dotenv).

    Args:
        dotenv_path: the file, or a folder holding a ``.env``; default: ``.env`` in the
            current directory (no search of parent folders).
        override: whether the file's values replace variables already set in the
            environment. **Default False: a variable already set wins.** This differs on
            purpose from the earlier FluxLoop SDK, whose default was True: in this project
            a ``.env`` file never overrides the real environment (CI secrets, shell
            exports), unless the caller asks for it.
        refresh_config: rebuild the SDK config from the environment afterwards, so the new
            ``FLUXLOOP_*`` values take effect (values set with :func:`configure` are
            replaced). A config not built yet is built from the environment on first use
            anyway. Either way the cached recording decision is dropped.

    Returns:
        True if the file was found and read, False if there is no such file.
    """
    path = Path.cwd() / ".env" if dotenv_path is None else Path(dotenv_path).expanduser()
    if path.is_dir():
        path = path / ".env"
    if not path.is_file():
        return False
    # Imported here: load_env is the only user, and production imports of the SDK stay light.
    from dotenv import load_dotenv

    load_dotenv(dotenv_path=path, override=override)
    global _config
    with _lock:
        if refresh_config and _config is not None:
            _config = _from_environment()
        _invalidate_recording()
    return True
