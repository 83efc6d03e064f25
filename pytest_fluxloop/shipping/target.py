"""Where traces go: a collector's address and token, checked before anything is sent.

:func:`collector_target` turns a configured URL and token into a :class:`CollectorTarget`,
or refuses them with a :class:`CollectorSettingError` that names the setting (never the
token). The rules:

* the URL is ``http://`` or ``https://`` with a host: the collector's base address (a path
  prefix is kept: ``https://host/fluxloop`` posts to ``/fluxloop/api/v1/batches``); no
  ``user:password@`` (the token has its own setting), no ``?query`` or ``#fragment``;
* the token is sent as ``Authorization: Bearer <token>``; it comes from the setting, else
  the environment variable :data:`TOKEN_ENV`;
* plain ``http://`` to a host that is not this machine is refused unless allowed
  (``collector_allow_insecure_http: true``, or :data:`ALLOW_INSECURE_ENV` ``=1``): the
  token and the conversations would cross the network readable by anyone on the path.

The token never appears in ``repr()``, a message or a report: :meth:`CollectorTarget.scrub`
removes it (and every other credential shape) from any text about the target.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..redact import REDACTED, Redactor
from .wire import BATCHES_PATH

__all__ = [
    "ALLOW_INSECURE_ENV",
    "TOKEN_ENV",
    "CollectorSettingError",
    "CollectorTarget",
    "collector_target",
    "insecure_allowed_by_env",
    "is_loopback_host",
    "sender_name",
    "token_from_env",
]

TOKEN_ENV = "FLUXLOOP_COLLECTOR_TOKEN"
"""The environment variable holding the collector's token when no setting gives one."""
ALLOW_INSECURE_ENV = "FLUXLOOP_COLLECTOR_ALLOW_INSECURE"
"""``1`` (or ``true``/``yes``/``on``): allow plain ``http://`` to a host that is not this
machine, as ``collector_allow_insecure_http: true`` does."""

_TRUE = frozenset({"1", "true", "yes", "on"})


class CollectorSettingError(ConfigError, ValueError):
    """A collector URL or token that cannot be used; the message names the setting.

    A :class:`~pytest_fluxloop.errors.ConfigError` (a run stops before any case, exit code
    4) and a ValueError (what the SDK's ``FluxLoopClient`` raises for a bad argument).
    """


@dataclass(frozen=True, repr=False)
class CollectorTarget:
    """A checked collector address and its token (build it with :func:`collector_target`)."""

    url: str
    """The base URL, as given, without a trailing ``/``."""
    scheme: str
    """``http`` or ``https``."""
    host: str
    """The host name or address (IPv6 without brackets)."""
    port: int
    base_path: str
    """The URL's path without a trailing ``/`` (``""`` for none)."""
    token: str | None = field(default=None, compare=False)
    """The bearer token, or None to send none (a loopback collector without a token)."""

    @property
    def batches_path(self) -> str:
        """The path batches are posted to (``/api/v1/batches`` under the base path)."""
        return f"{self.base_path}{BATCHES_PATH}"

    @property
    def batches_url(self) -> str:
        """The full URL batches are posted to."""
        return f"{self.url}{BATCHES_PATH}"

    def headers(self, content_length: int) -> dict[str, str]:
        """The headers of a batch request: a gzip-compressed JSON body, and the token."""
        headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Content-Length": str(content_length),
            "Accept": "application/json",
            "User-Agent": sender_name(),
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def scrub(self, text: str) -> str:
        """``text`` without the token or any other credential (for messages and reports)."""
        if self.token:
            # Replaced whatever its length: the redactor skips literals under 8 characters.
            text = text.replace(self.token, REDACTED)
        return Redactor().redact_text(text)

    def __repr__(self) -> str:
        # Hand-written: the token must never reach a log line or a traceback.
        return f"CollectorTarget({self.url!r}, token={'set' if self.token else 'none'})"

    __str__ = __repr__


def token_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """The token in :data:`TOKEN_ENV` (stripped), or None when unset or empty."""
    env = os.environ if environ is None else environ
    value = (env.get(TOKEN_ENV) or "").strip()
    return value or None


def insecure_allowed_by_env(environ: Mapping[str, str] | None = None) -> bool:
    """Whether :data:`ALLOW_INSECURE_ENV` allows plain ``http://`` to another host."""
    env = os.environ if environ is None else environ
    return (env.get(ALLOW_INSECURE_ENV) or "").strip().lower() in _TRUE


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` is this machine: ``localhost`` (and ``*.localhost``) or a loopback
    address. Names are not resolved: a name that happens to resolve to 127.0.0.1 today may
    not tomorrow, and the check must not wait on DNS."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def sender_name() -> str:
    """``pytest-fluxloop <version>``: the batches' ``source.sender`` and the User-Agent."""
    global _SENDER
    if _SENDER is None:
        try:
            version = importlib_metadata.version("pytest-fluxloop")
        except importlib_metadata.PackageNotFoundError:
            version = "unknown"
        _SENDER = f"pytest-fluxloop {version}"
    return _SENDER


_SENDER: str | None = None


def _shown(url: str) -> str:
    """``url`` for a message: any ``user:password@`` part replaced (it may be a secret)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return f"{scheme}{sep}{netloc}{slash}{tail}"


def collector_target(
    url: str,
    *,
    token: str | None = None,
    allow_insecure_http: bool = False,
    url_setting: str = "collector_url",
    token_setting: str = "collector_api_key",
    allow_setting: str = "collector_allow_insecure_http: true",
    environ: Mapping[str, str] | None = None,
) -> CollectorTarget:
    """Check a collector address and token; the token defaults to :data:`TOKEN_ENV`.

    ``url_setting``, ``token_setting`` and ``allow_setting`` are how messages name the
    settings (``configs/project.yaml: collector_url``, ``--url`` ...).

    Raises:
        CollectorSettingError: a URL that is not ``http(s)://host[:port][/path]``, carries a
            password, query or fragment; a token with line breaks or non-Latin-1
            characters (it could not be a header); plain ``http://`` to a host that is not
            this machine without ``allow_insecure_http``.
    """
    text = url.strip() if isinstance(url, str) else ""
    example = "such as http://localhost:8000 or https://collector.example.com"
    try:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        scheme, host, port = "", "", None
    if scheme not in ("http", "https") or not host:
        raise CollectorSettingError(
            f"{url_setting} must be an http:// or https:// URL {example}, got {_shown(str(url))!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise CollectorSettingError(
            f"{url_setting} must not carry a user name or password ({_shown(text)!r}): give "
            f"the collector's token in {token_setting} or {TOKEN_ENV} instead"
        )
    if parts.query or parts.fragment:
        raise CollectorSettingError(
            f"{url_setting} must be the collector's base address, without ?query or "
            f"#fragment: got {_shown(text)!r}"
        )
    if token is None:
        token = token_from_env(environ)
        token_setting = TOKEN_ENV
    token = token.strip() if token else None
    if token and (any(ch in token for ch in "\r\n\0") or not _latin1(token)):
        raise CollectorSettingError(
            f"{token_setting}: the collector token contains a line break or a character "
            "that cannot be sent in an HTTP header; check its value"
        )
    allowed = allow_insecure_http or insecure_allowed_by_env(environ)
    if scheme == "http" and not is_loopback_host(host) and not allowed:
        raise CollectorSettingError(
            f"{url_setting} {_shown(text)!r} is plain http:// to a host that is not this "
            "machine: the token and the traces would cross the network unencrypted. Use "
            f"https://, or allow it with {allow_setting} (or {ALLOW_INSECURE_ENV}=1)"
        )
    base = text.rstrip("/")
    return CollectorTarget(
        url=base,
        scheme=scheme,
        host=host,
        port=port or (443 if scheme == "https" else 80),
        base_path=parts.path.rstrip("/"),
        token=token or None,
    )


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True
