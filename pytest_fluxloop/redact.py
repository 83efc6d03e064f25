"""Secret redaction for everything that reaches an artifact file, a log or a message.

A :class:`Redactor` returns a deep copy of JSON-like data in which

* values stored under secret-looking keys (``api_key``, ``Authorization``, ``password`` ...)
  are replaced by :data:`REDACTED`;
* substrings that look like credentials (``sk-...``, ``sk-ant-...``, ``Bearer <token>``,
  ``Basic <base64>``, GitHub ``ghp_...``, AWS ``AKIA...``, JWTs) are replaced inside any
  string;
* values after a secret-looking key inside text (``api_key="..."``, ``password: ...``);
* the exact values of secret environment variables (read once, at construction) and any
  extra literal secrets given to the constructor are replaced inside any string.

A run's own secrets (the ``api_key`` values of its config files) are not shaped like
anything: whoever builds a redactor for a run passes them as ``extra_secrets``
(``LoadedConfig.secrets()``). :func:`install_log_redaction` puts the same scrubbing on the
package's loggers.

It runs on every record, so all patterns are compiled once at import (each a fast
literal-prefix scan, see ``_SHAPES``), literal secrets once per instance, and key names are
classified once and cached.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "PACKAGE_LOGGERS",
    "REDACTED",
    "RedactingLogFilter",
    "Redactor",
    "install_log_redaction",
    "is_secret_key",
    "redact",
    "secret_env_values",
]

REDACTED = "***REDACTED***"

#: Env var names whose values are always treated as secrets.
SECRET_ENV_NAMES = frozenset(
    {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "FLUXLOOP_SUPERVISOR_API_KEY", "FLUXLOOP_API_KEY"}
)
#: Env var name suffixes that mark a secret.
SECRET_ENV_SUFFIXES = (
    "_API_KEY",
    "_TOKEN",
    "_SECRET",
    "_PASSWORD",
    "_SECRET_KEY",
    "_ACCESS_KEY",
    "_PRIVATE_KEY",
)
#: Literal secrets shorter than this are ignored: redacting "abc" everywhere would mangle text.
MIN_LITERAL_SECRET_LEN = 8

# A key part that marks a secret wherever it appears (``password_hash``, ``db_password``).
_STRONG_PARTS = frozenset(
    {
        "password",
        "passwd",
        "secret",
        "secrets",
        "authorization",
        "credential",
        "credentials",
        "cookie",
        "cookies",
        "apikey",
        "privatekey",
    }
)
# Parts that mark a secret only as the *last* part: ``access_token`` and ``auth`` are
# secrets, ``token_usage`` and ``auth_mode`` are not. Plural ``tokens`` (counts) never is.
_TRAILING_PARTS = frozenset({"token", "auth", "bearer"})
# Qualifiers that make a trailing ``key`` a secret (``api_key``, ``private_key``), while
# ``sort_key`` or ``cache_key`` stay visible.
_KEY_QUALIFIERS = frozenset({"api", "private", "secret", "access", "signing", "encryption"})

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def _ci(pattern: str) -> str:
    """Make every letter of ``pattern`` match either case: ``_ci("key") == "[Kk][Ee][Yy]"``.

    Used instead of ``(?i:...)`` because it keeps the fast literal scan; ``pattern`` must
    not contain letters inside character classes or escapes.
    """
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in pattern)


# Why several regexes instead of one alternation: CPython's ``re`` jumps straight to a
# literal prefix, so each literal-first pattern below scans 1 KB of text in well under a
# microsecond, while the same patterns joined into one alternation take ~60 us (every
# position tries every branch). Lookbehinds sit *after* the literal for the same reason.
_SHAPES: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        # OpenAI (sk-..., sk-proj-...) and Anthropic (sk-ant-...) keys.
        r"sk-(?<![A-Za-z0-9_-]sk-)[A-Za-z0-9_-]{16,}",
        # GitHub personal/OAuth/app tokens and fine-grained PATs.
        r"gh[pousr]_(?<![A-Za-z0-9_]gh[pousr]_)[A-Za-z0-9]{20,}",
        r"github_pat_(?<![A-Za-z0-9_]github_pat_)[A-Za-z0-9_]{20,}",
        # JSON Web Tokens (header and payload are base64url JSON, so both start "eyJ").
        r"eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
        # AWS access key ids.
        r"A[KS]IA(?<![A-Z0-9]A[KS]IA)[A-Z0-9]{16}(?![A-Z0-9])",
    )
)

# HTTP auth schemes inside free text; the scheme stays visible. Basic needs a digit or +/=
# so "Basic instructions" (plain English) is left alone; Bearer tokens are opaque, so any
# 8+ token characters count.
_AUTH_SCHEMES: tuple[re.Pattern[str], ...] = (
    re.compile(r"(?P<scheme>[Bb]earer(?<![A-Za-z0-9_][Bb]earer)\s+)[A-Za-z0-9\-._~+/]{8,}=*"),
    re.compile(
        r"(?P<scheme>Basic(?<![A-Za-z0-9_]Basic)\s+)(?=[A-Za-z0-9+/]*[0-9+/=])[A-Za-z0-9+/]{8,}={0,2}"
    ),
)

# ``key=value`` / ``key: value`` / ``"key": "value"`` with a secret-looking key, as in
# tracebacks, logs, reprs and JSON held in a string. The key must *end* with the secret word
# (``OPENAI_API_KEY=``, ``client_secret:``), so ``max_tokens=5`` and ``token_usage: 3`` stay;
# the key itself, any auth scheme and the quotes stay visible.
_SECRET_WORDS = (
    "api[_-]?key|private[_-]?key|secrets?|credentials?|token|password|passwd|cookie|authorization"
)
_KEY_VALUE = re.compile(
    rf"""(?P<key>(?:{_ci(_SECRET_WORDS)})["']?\s*[:=]\s*)"""
    r"""(?P<scheme>(?i:bearer|basic|token|digest)\s+)?"""
    r"""(?:"(?P<dq>[^"\n]+)"|'(?P<sq>[^'\n]+)'|[^\s"',;&)}\]]+)"""
)
# Cheap gate for _KEY_VALUE, run on the lower-cased text (all-literal branches are fast).
_KEY_VALUE_GATE = re.compile(rf"""(?:{_SECRET_WORDS})["']?\s*[:=]""")


# ---- the quick check on a serialised record (Redactor.leaves_json_unchanged) ----------
# Each check below is a *superset* of a rule above, run once over the JSON text of a whole
# record instead of a walk over its values: when none fires, redacting the record would
# change nothing. In JSON text a string's characters appear as they are, except that `"`,
# `\` and control characters (and, in our lines, U+2028/U+2029/U+0085 and lone surrogates)
# become escapes; so lookarounds are dropped (an escape like `\n` ends in a letter), and
# where a rule allows whitespace or a quote the check also allows their escapes.
_JSON_SPACE = r"(?:\s|\\[nrtbf]|\\u[0-9a-f]{4})*"
# The rest of a key after its secret-looking last part: no letter or digit up to its end.
_JSON_KEY_TAIL = r'(?:[^a-z0-9"\\]|\\[^u]|\\u[0-9a-f]{4})*"\s*:'
# The key shapes above with their lookarounds taken out (``(?<!...)``, ``(?!...)``): each
# matches wherever its original does, so one list of shapes serves both.
_LOOKAROUND = re.compile(r"\(\?<?[!=][^()]*\)")
_JSON_SHAPES: tuple[re.Pattern[str], ...] = tuple(
    re.compile(_LOOKAROUND.sub("", shape.pattern)) for shape in _SHAPES
)
# Substrings of the lower-cased text that end the quick check at once: the key parts that
# make a key secret wherever they appear, and key-value words the rules below don't cover.
_JSON_WORDS = (
    "password",
    "passwd",
    "secret",
    "credential",
    "cookie",
    "authoriz",
    "apikey",
    "privatekey",
    "bearer",
)
# (word that must be present, check): a key-value pair in text (`token: x`, `api_key=x`,
# `"token": "x"` inside a string) or a mapping key whose last part is secret (`auth`,
# `access_token`, `x-api-key`, `privateKey`; any key ending in "key" stands in for the
# qualified ones).
_JSON_KEY_CHECKS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (word, re.compile(pattern))
    for word, pattern in (
        ("token", rf"""token(?:\\?["'])?{_JSON_SPACE}[:=]"""),
        ("token", rf"token{_JSON_KEY_TAIL}"),
        ("key", rf"""key(?:\\?["'])?{_JSON_SPACE}[:=]"""),
        ("key", rf"key{_JSON_KEY_TAIL}"),
        ("auth", rf"auth{_JSON_KEY_TAIL}"),
    )
)


def _scheme_repl(match: re.Match[str]) -> str:
    return f"{match.group('scheme')}{REDACTED}"


def _key_value_repl(match: re.Match[str]) -> str:
    quote = '"' if match.group("dq") is not None else "'" if match.group("sq") else ""
    return f"{match.group('key')}{match.group('scheme') or ''}{quote}{REDACTED}{quote}"


@functools.lru_cache(maxsize=4096)  # records repeat the same few keys over and over
def is_secret_key(key: str) -> bool:
    """Whether a mapping key names a secret (case-insensitive, ``_``/``-``/camelCase aware).

    ``api_key``, ``X-Api-Key``, ``accessToken``, ``Authorization``, ``set-cookie`` are
    secrets; ``token_usage``, ``max_tokens``, ``prompt_tokens``, ``author`` are not.
    """
    parts = [p for p in _NON_ALNUM.split(_CAMEL_BOUNDARY.sub("_", key).lower()) if p]
    if not parts:
        return False
    if any(p in _STRONG_PARTS for p in parts):
        return True
    last = parts[-1]
    if last in _TRAILING_PARTS:
        return True
    return last == "key" and len(parts) > 1 and parts[-2] in _KEY_QUALIFIERS


def _normal_key(key: str) -> str:
    """A key name compared case-insensitively, without separators (``X-Session_ID`` →
    ``xsessionid``)."""
    return _NON_ALNUM.sub("", key.lower())


@functools.lru_cache(maxsize=4096)
def _is_secret_env_name(name: str) -> bool:
    # Cached by name: redact() reads the environment's values on every call (a key exported
    # later must still be scrubbed), and the names it checks are nearly always the same.
    upper = name.upper()
    if upper in SECRET_ENV_NAMES:
        return True
    return any(upper.endswith(s) or upper == s[1:] for s in SECRET_ENV_SUFFIXES)


def secret_env_values(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """Values of secret-looking environment variables (at least 8 characters long)."""
    env = os.environ if environ is None else environ
    return frozenset(
        value
        for name, value in env.items()
        if len(value) >= MIN_LITERAL_SECRET_LEN and _is_secret_env_name(name)
    )


class Redactor:
    """Replaces secrets in JSON-like data with :data:`REDACTED`.

    Args:
        extra_secrets: literal strings to scrub wherever they appear (shorter than
            :data:`MIN_LITERAL_SECRET_LEN` characters are ignored).
        include_env: also scrub the values of secret environment variables, read now.
        environ: the environment to read instead of ``os.environ`` (for tests).
        max_depth: nesting beyond this is replaced by ``"<max depth>"``.
        extra_keys: more key names whose values are secrets (``capture.redact_keys``),
            compared case-insensitively without ``_``/``-``.
        extra_patterns: more regular expressions whose matches are secrets
            (``capture.redact_patterns``).
    """

    def __init__(
        self,
        extra_secrets: Iterable[str] = (),
        *,
        include_env: bool = True,
        environ: Mapping[str, str] | None = None,
        max_depth: int = 100,
        extra_keys: Iterable[str] = (),
        extra_patterns: Iterable[str] = (),
    ) -> None:
        literals = {s for s in extra_secrets if isinstance(s, str)}
        self._extra_keys = frozenset(_normal_key(k) for k in extra_keys)
        self._extra_patterns = tuple(re.compile(p) for p in extra_patterns)
        if include_env:
            literals |= secret_env_values(environ)
        self.literals: frozenset[str] = frozenset(
            s for s in literals if len(s) >= MIN_LITERAL_SECRET_LEN
        )
        self.max_depth = max_depth
        # Longest literal first, so a secret that contains another is replaced whole.
        ordered = sorted(self.literals, key=len, reverse=True)
        self._literal_pattern: re.Pattern[str] | None = (
            re.compile("|".join(re.escape(s) for s in ordered)) if ordered else None
        )
        self._key_cache: dict[str, str] = {}
        # The literals as they appear inside a JSON string; the quick check is only sound
        # for rules it knows, so custom keys and patterns (and a literal that JSON escapes
        # in ways it does not model) always take the full walk.
        self._literal_json: tuple[str, ...] | None = (
            tuple(json.dumps(s)[1:-1] for s in ordered)
            if all(s.isascii() for s in ordered)
            and not self._extra_keys
            and not self._extra_patterns
            else None
        )

    def redact_text(self, text: str) -> str:
        """Return ``text`` with every credential-looking substring replaced."""
        if len(text) < MIN_LITERAL_SECRET_LEN:
            return text
        # Literal secrets first: an env value may itself look like ``sk-...``.
        if self._literal_pattern is not None and any(s in text for s in self.literals):
            text = self._literal_pattern.sub(REDACTED, text)
        for pattern in _SHAPES:
            text = pattern.sub(REDACTED, text)
        for pattern in self._extra_patterns:
            text = pattern.sub(REDACTED, text)
        for pattern in _AUTH_SCHEMES:
            text = pattern.sub(_scheme_repl, text)
        # Each step leaves ``***REDACTED***`` untouched or rewrites it to itself, so the
        # order of the steps does not change the result.
        if _KEY_VALUE_GATE.search(text.lower()):
            text = _KEY_VALUE.sub(_key_value_repl, text)
        return text

    def leaves_json_unchanged(self, text: str) -> bool:
        """Whether redacting the value serialised as ``text`` would return it unchanged.

        ``text`` must be the value's JSON as :func:`~pytest_fluxloop.jsonsafe.dumps_line`
        writes it (every string and key of the value in it). A quick, conservative check:
        True only when no rule can apply; False whenever one might (then redact the value
        itself). For a whole record it costs a few scans of its line instead of a walk
        over every value.
        """
        literals = self._literal_json
        if literals is None or text.count("{") + text.count("[") > self.max_depth:
            return False
        if "earer" in text or "Basic" in text:
            return False
        # Plain loops: this runs on every record, and generator expressions cost more here
        # than the scans they drive.
        for literal in literals:
            if literal in text:
                return False
        for shape in _JSON_SHAPES:
            if shape.search(text):
                return False
        lower = text.lower()
        for word in _JSON_WORDS:
            if word in lower:
                return False
        for word, check in _JSON_KEY_CHECKS:  # noqa: SIM110 - a loop, as said above
            if word in lower and check.search(lower):
                return False
        return True

    def secret_key(self, key: str) -> bool:
        """Whether values under ``key`` are secrets: a secret-looking name
        (:func:`is_secret_key`) or one of ``extra_keys``."""
        return is_secret_key(key) or bool(self._extra_keys and _normal_key(key) in self._extra_keys)

    def _key_text(self, key: str) -> str:
        # Keys repeat across records (field names): redact each distinct key once.
        cached = self._key_cache.get(key)
        if cached is None:
            cached = self.redact_text(key)
            if len(self._key_cache) < 4096:
                self._key_cache[key] = cached
        return cached

    def __call__(self, obj: Any) -> Any:
        """Return a redacted deep copy of ``obj`` (dicts, lists and tuples are copied)."""
        return self._walk(obj, 0, set())

    redact = __call__

    def _walk(self, obj: Any, depth: int, active: set[int]) -> Any:
        if isinstance(obj, str):
            return self.redact_text(obj)
        if not isinstance(obj, (dict, list, tuple)):
            return obj
        if depth > self.max_depth:
            return "<max depth>"
        key = id(obj)
        if key in active:
            return "<cycle>"
        active.add(key)
        try:
            if isinstance(obj, dict):
                out: dict[Any, Any] = {}
                for k, v in obj.items():
                    if isinstance(k, str):
                        if self.secret_key(k):
                            # None/bool carry no secret and keep configs readable.
                            out[self._key_text(k)] = (
                                v if v is None or isinstance(v, bool) else REDACTED
                            )
                            continue
                        k = self._key_text(k)
                    out[k] = self._walk(v, depth + 1, active)
                return out
            items = [self._walk(v, depth + 1, active) for v in obj]
            return items if isinstance(obj, list) else tuple(items)
        finally:
            active.discard(key)


_default: tuple[frozenset[str], Redactor] | None = None


def redact(obj: Any) -> Any:
    """Redact ``obj`` with a default :class:`Redactor`.

    The default instance is rebuilt whenever the set of secret environment values changes,
    so a key exported after import is still scrubbed.
    """
    global _default
    env_secrets = secret_env_values()
    if _default is None or _default[0] != env_secrets:
        _default = (env_secrets, Redactor())
    return _default[1](obj)


#: The loggers of this package; :func:`install_log_redaction` filters each of them.
PACKAGE_LOGGERS = ("pytest_fluxloop", "pytest_fluxloop.llm")


class RedactingLogFilter(logging.Filter):
    """A logging filter that redacts each record's message (and traceback text) in place.

    A filter on a logger sees only the records logged *on that logger* (not those of its
    children), so :func:`install_log_redaction` puts the one instance on every package
    logger. The redactor is rebuilt when the secrets change, as :func:`redact` does.
    """

    def __init__(self) -> None:
        super().__init__()
        self._secrets: frozenset[str] = frozenset()
        self._current: tuple[frozenset[str], frozenset[str], Redactor] | None = None

    def add_secrets(self, secrets: Iterable[str]) -> None:
        """Also scrub these literal values from now on (short ones are ignored)."""
        self._secrets = self._secrets | frozenset(s for s in secrets if isinstance(s, str))

    def redactor(self) -> Redactor:
        """The redactor for the registered secrets and the current environment."""
        env = secret_env_values()
        current = self._current
        if current is None or current[0] != self._secrets or current[1] != env:
            current = (self._secrets, env, Redactor(self._secrets))
            self._current = current
        return current[2]

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; never drops it."""
        try:
            message = record.getMessage()
        except Exception:
            # A broken format string: keep its text, drop the arguments (they may hold a
            # secret, and logging's own error report would print them unredacted).
            message = str(record.msg)
        redactor = self.redactor()
        record.msg = redactor.redact_text(message)
        # The message is formatted now, so arguments (where a key would hide) are gone.
        record.args = None
        if record.exc_info and not record.exc_text:
            # Formatters reuse a cached exc_text: fill it, redacted, before any handler runs.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redactor.redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.redact_text(record.stack_info)
        return True


_LOG_FILTER = RedactingLogFilter()


def install_log_redaction(secrets: Iterable[str] = ()) -> RedactingLogFilter:
    """Redact every log line of this package: ``secrets``, the environment's keys and every
    credential shape. Idempotent; secrets from later calls are added to earlier ones.

    Loggers are created here if they do not exist yet, so modules imported later (the LLM
    clients) log through the filtered logger too.
    """
    _LOG_FILTER.add_secrets(secrets)
    manager = logging.Logger.manager
    names = set(PACKAGE_LOGGERS)
    names.update(name for name in list(manager.loggerDict) if name.startswith("pytest_fluxloop."))
    for name in sorted(names):
        logger = logging.getLogger(name)
        if _LOG_FILTER not in logger.filters:
            logger.addFilter(_LOG_FILTER)
    return _LOG_FILTER
