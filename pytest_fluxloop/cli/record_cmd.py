"""``fluxloop record enable | disable | status``: argument recording, and replaying it.

Recording and replay are two phases of one workflow, run in two different processes:

1. ``fluxloop record enable`` writes ``FLUXLOOP_RECORD_ARGS=true`` and
   ``FLUXLOOP_RECORDING_FILE`` into the project's ``.env``. The *application* (not
   FluxLoop) reads them: the SDK's ``record_call_args`` appends one redacted JSON line per
   call while they are set.
2. ``fluxloop record disable`` sets ``FLUXLOOP_RECORD_ARGS=false`` again. With ``--replay``
   it also turns ``replay_args.enabled: true`` on in simulation.yaml, its
   ``recording_file`` pointing at the file just recorded, so the next
   ``fluxloop run experiment`` replays it; ``--no-replay`` turns replay off.
3. ``fluxloop record status`` shows both halves: whether recording is on (and where that
   comes from), the file, how many calls it holds per target, and ``replay_args``.

``enable`` never touches ``replay_args``: recording and replay are two phases (record in
the running application, then replay in experiments), so turning replay on belongs to the
end of recording. Calls made inside an experiment are never recorded (the SDK checks that it
is not in a case), so the two may be on at once without the replay feeding itself.

Both files are the user's: they are edited in place, never rewritten from parsed data.
Every other line, comment, blank line, quoting style and the order stay as written; the
result is checked by reading it back (python-dotenv for ``.env``, :func:`load_config` for
simulation.yaml) before it counts, and written atomically.

No argument value is ever printed: ``status`` shows counts, targets and timestamps only.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import ConfigError
from .location import location_options
from .pytest_args import resolve_config_path
from .run import _display

if TYPE_CHECKING:
    from ..config import LoadedConfig
    from ..config.yaml_io import YamlDocument

__all__ = [
    "RECORDING_FILE_VAR",
    "RECORD_ARGS_VAR",
    "EnvChange",
    "record_group",
    "set_dotenv_values",
    "set_replay_args",
    "write_atomic",
]

RECORD_ARGS_VAR = "FLUXLOOP_RECORD_ARGS"
RECORDING_FILE_VAR = "FLUXLOOP_RECORDING_FILE"
_VARS = (RECORD_ARGS_VAR, RECORDING_FILE_VAR)
_NEW_ENV_MODE = 0o600  # a new .env: it usually ends up holding API keys too

_LOCATION_HELP = (
    "Simulation config of the project; relative to the project with --project, else to "
    "the current directory. The project root (the folder above configs/) holds the .env."
)


# --------------------------------------------------------------------------- files


def _read_text(path: Path) -> str:
    """The file's text exactly (``newline=""``: CRLF line ends are kept as they are)."""
    with open(path, encoding="utf-8", newline="") as fh:
        return fh.read()


def _newline_of(text: str) -> str:
    """The line end new lines get: the file's own (CRLF files stay CRLF)."""
    return "\r\n" if "\r\n" in text else "\n"


def write_atomic(path: Path, text: str, new_mode: int = 0o644) -> None:
    """Replace ``path``'s content with ``text`` all at once (temp file + ``os.replace``).

    A symlink is followed, so the file it points at is updated and the link stays. The
    file's permissions are kept; a new file gets ``new_mode``. A reader never sees half a
    file, and a failed write leaves the old content in place.
    """
    target = Path(os.path.realpath(path))
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = new_mode
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------- .env


@dataclass(frozen=True)
class EnvChange:
    """What :func:`set_dotenv_values` did to one variable."""

    key: str
    old: str | None
    """The value before (None: the variable was not in the file)."""
    new: str
    line: int
    """1-based line of the assignment in the file as written."""

    @property
    def action(self) -> str:
        """``added``, ``changed`` or ``unchanged``."""
        if self.old is None:
            return "added"
        return "unchanged" if self.old == self.new else "changed"

    def describe(self) -> str:
        """``KEY=value (what happened)`` for the command's output."""
        what = f"was {self.old!r}" if self.action == "changed" else self.action
        return f"{self.key}={self.new}  ({what}, line {self.line})"


_PLAIN_ENV_VALUE = re.compile(r"[A-Za-z0-9_./:@%+,~=-]+")
_ASSIGNMENT = re.compile(
    r"(?P<lead>\s*)(?P<export>export[ \t]+)?(?P<key>'?[^\s='#]+'?)(?P<sep>[ \t]*=[ \t]*)?"
    r"(?P<rest>.*)",
    re.DOTALL,
)
_SINGLE_QUOTED = re.compile(r"'(?:\\'|[^'])*'")
_DOUBLE_QUOTED = re.compile(r'"(?:\\"|[^"])*"')


def _env_value(value: str, quote: str | None) -> str:
    """``value`` spelled for a .env line, keeping the quoting the line had where it can."""
    if quote == "'" and "'" not in value and "\\" not in value:
        return f"'{value}'"
    if quote is None and _PLAIN_ENV_VALUE.fullmatch(value):
        return value
    # Double quotes: python-dotenv decodes \\ and \" inside them, so escape both.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _replace_assignment(original: str, value: str) -> str:
    """One parsed ``.env`` assignment (as python-dotenv cut it: leading blank lines, an
    optional ``export``, the key, the value, an inline comment, the line end) with only the
    value replaced."""
    match = _ASSIGNMENT.fullmatch(original)
    if match is None:  # python-dotenv accepted it, so it has this shape; be safe anyway
        raise ConfigError(f"cannot find the value in the .env line {original.strip()!r}")
    head = match["lead"] + (match["export"] or "") + match["key"]
    rest = match["rest"]
    if match["sep"] is None:  # `KEY` alone on its line: give it its value
        return f"{head}={_env_value(value, None)}{rest}"
    if rest[:1] in ("'", '"'):
        quoted = (_SINGLE_QUOTED if rest[0] == "'" else _DOUBLE_QUOTED).match(rest)
        if quoted is not None:
            return head + match["sep"] + _env_value(value, rest[0]) + rest[quoted.end() :]
    # Unquoted: the value runs to the end of its line or to ` #` (an inline comment).
    line_end = re.search(r"[\r\n]", rest)
    line = rest[: line_end.start()] if line_end else rest
    comment = re.search(r"[ \t]+#", line)
    old_value = line[: comment.start()] if comment else line.rstrip(" \t")
    return head + match["sep"] + _env_value(value, None) + rest[len(old_value) :]


def _key_line(binding: Any) -> int:
    """1-based line of a binding's key (python-dotenv counts from its leading blank lines)."""
    original = binding.original
    lead = len(original.string) - len(original.string.lstrip())
    return int(original.line) + original.string[:lead].count("\n")


def set_dotenv_values(path: Path, values: dict[str, str]) -> tuple[list[EnvChange], list[str]]:
    """Set ``values`` in the ``.env`` at ``path`` (created when missing); returns what changed
    per key and warnings.

    Every other line stays byte for byte: comments, blank lines, other variables, their
    order, lines python-dotenv cannot parse. An existing assignment is updated in place,
    keeping its ``export``, quoting style and inline comment; a missing one is appended. A
    key assigned more than once gets its last assignment updated (the one that takes
    effect) and a warning. The new text is read back with python-dotenv before it is
    written; if it does not give ``values``, nothing is written (ConfigError).
    """
    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    created = not path.exists()
    text = "" if created else _read_text(path)
    bindings = list(parse_stream(io.StringIO(text)))
    pieces = [binding.original.string for binding in bindings]
    if "".join(pieces) != text:  # the parser must cover the file exactly to edit it
        raise ConfigError(f"{path}: cannot edit this .env safely; set {', '.join(values)} by hand")
    warnings: list[str] = []
    changes: list[EnvChange] = []
    appended: list[tuple[str, str]] = []
    old_values = dotenv_values(stream=io.StringIO(text))
    for key, value in values.items():
        found = [i for i, b in enumerate(bindings) if b.key == key and not b.error]
        if not found:
            appended.append((key, value))
            continue
        last = found[-1]
        if len(found) > 1:
            lines = ", ".join(str(_key_line(bindings[i])) for i in found)
            warnings.append(
                f"{key} is set more than once (lines {lines}); updated the last one "
                f"(line {_key_line(bindings[last])}), the one that takes effect; remove the others"
            )
        pieces[last] = _replace_assignment(pieces[last], value)
        changes.append(EnvChange(key, old_values.get(key), value, _key_line(bindings[last])))
    new_text = "".join(pieces)
    newline = _newline_of(text)
    if appended and new_text and not new_text.endswith(("\n", "\r")):
        new_text += newline
    for key, value in appended:
        line = new_text.count("\n") + 1
        new_text += f"{key}={_env_value(value, None)}{newline}"
        changes.append(EnvChange(key, None, value, line))
    # Proof before writing: python-dotenv, which every reader of the file uses, must read
    # back exactly the values set.
    read_back = dotenv_values(stream=io.StringIO(new_text))
    wrong = [key for key, value in values.items() if read_back.get(key) != value]
    if wrong:
        raise ConfigError(
            f"{path}: the edit would not read back as intended for {', '.join(wrong)}; the "
            "file was left unchanged, set the values by hand"
        )
    changes.sort(key=lambda change: list(values).index(change.key))
    if new_text != text or created:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, new_text, new_mode=_NEW_ENV_MODE)
    return changes, warnings


# --------------------------------------------------------------------------- simulation.yaml

_HEADER = re.compile(r"(?P<indent>[ ]*)(?:replay_args|'replay_args'|\"replay_args\")[ \t]*:")
_INDICATORS = tuple("&*!|>{[%@`")
_BLANK_OR_COMMENT = re.compile(r"[ \t]*(?:#.*)?")


def _yaml_value(value: bool | str, quote: str | None) -> str:
    """``value`` spelled as a YAML scalar: keeps the old quote style, plain when that reads
    back as the same string, else double-quoted (a JSON string is valid YAML)."""
    import yaml

    if isinstance(value, bool):
        return "true" if value else "false"
    if quote == "'":
        return "'" + value.replace("'", "''") + "'"
    if quote is None and re.fullmatch(r"[A-Za-z0-9_./~+-][A-Za-z0-9_./~+@%-]*", value):
        try:
            plain_ok = yaml.safe_load(value) == value  # "true", "null", "1e3" need quotes
        except yaml.YAMLError:
            plain_ok = False
        if plain_ok:
            return value
    return json.dumps(value, ensure_ascii=False)


def _split_line(line: str) -> tuple[str, str]:
    """A line and its line end."""
    body = line.rstrip("\r\n")
    return body, line[len(body) :]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _single_line_value(lines: list[str], index: int) -> bool:
    """Whether the value of the key on ``lines[index]`` ends on that line: the next line
    that is not blank or a comment is not indented deeper (no block, no continuation)."""
    own = _indent(lines[index])
    for line in lines[index + 1 :]:
        body, _ = _split_line(line)
        if _BLANK_OR_COMMENT.fullmatch(body):
            continue
        return _indent(body) <= own
    return True


def _replace_scalar(line: str, key: str, value: bool | str) -> str | None:
    """``line`` (``key: old  # comment``) with the scalar replaced; None when the line is
    not a plain one-line ``key: scalar`` (flow style, anchors, tags, block scalars ...)."""
    body, end = _split_line(line)
    match = re.match(rf"[ ]*(?:{key}|'{key}'|\"{key}\")[ \t]*:", body)
    if match is None:
        return None
    head, rest = body[: match.end()], body[match.end() :]
    stripped = rest.lstrip(" \t")
    if not stripped or stripped.startswith("#"):  # `key:` (null), maybe with a comment
        return f"{head} {_yaml_value(value, None)}{' ' + stripped if stripped else ''}{end}"
    space = rest[: len(rest) - len(stripped)]
    if stripped[0] in ("'", '"'):
        pattern = r"'(?:[^']|'')*'" if stripped[0] == "'" else r'"(?:[^"\\]|\\.)*"'
        quoted = re.match(pattern, stripped)
        if quoted is None:
            return None  # a quoted value that goes on over the next lines
        after = stripped[quoted.end() :]
        quote: str | None = stripped[0]
    elif stripped.startswith(_INDICATORS) or stripped.startswith(("- ", "? ")):
        return None
    else:
        comment = re.search(r"[ \t]+#", stripped)
        old = stripped[: comment.start()] if comment else stripped.rstrip(" \t")
        after = stripped[len(old) :]
        quote = None
    if not _BLANK_OR_COMMENT.fullmatch(after.lstrip(" \t")) or (after and after[0] not in " \t"):
        return None
    return f"{head}{space}{_yaml_value(value, quote)}{after}{end}"


def _child_indent(doc: YamlDocument, lines: list[str]) -> int:
    """How far this file indents a nested block key (that of its first one; else 2)."""
    for loc, line in doc.lines.items():
        if len(loc) == 2 and all(isinstance(part, str) for part in loc):
            parent = doc.lines.get(loc[:1])
            if parent is not None and parent != line:
                step = _indent(lines[line - 1]) - _indent(lines[parent - 1])
                if step > 0:
                    return step
    return 2


def _by_hand(path: Path, line: int | None, why: str, updates: dict[str, bool | str]) -> ConfigError:
    where = f"{path}:{line}" if line else str(path)
    wanted = "".join(f"\n    {key}: {_yaml_value(value, None)}" for key, value in updates.items())
    return ConfigError(
        f"{where}: cannot edit replay_args automatically ({why}); set it by hand:\n"
        f"  replay_args:{wanted}"
    )


def _edited_config_text(path: Path, text: str, updates: dict[str, bool | str]) -> str:
    """simulation.yaml's ``text`` with ``replay_args.<key>: value`` set for each update.

    Targeted text edits at the lines the safe YAML reader gives for each key: a value is
    replaced on its own line (its comment and quoting kept), a missing key is inserted under
    the ``replay_args:`` line, a missing block is appended at the end. Shapes that a line
    edit cannot change safely (flow style, anchors, multi-line values) are refused with
    what to write by hand.
    """
    from ..config.yaml_io import parse_yaml

    doc = parse_yaml(text, path)
    if not isinstance(doc.data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings; fix the file first")
    lines = text.splitlines(keepends=True)
    newline = _newline_of(text)
    step = _child_indent(doc, lines)
    if "replay_args" not in doc.data:
        block = [f"replay_args:{newline}"]
        block += [f"{' ' * step}{k}: {_yaml_value(v, None)}{newline}" for k, v in updates.items()]
        if lines and not lines[-1].endswith(("\n", "\r")):
            lines[-1] += newline
        return "".join(lines) + newline + "".join(block)

    header_line = doc.lines[("replay_args",)]
    header = lines[header_line - 1]
    match = _HEADER.match(header)
    replay = doc.data["replay_args"]
    after_colon = _split_line(header)[0][match.end() :] if match else ""
    if match is None or not _BLANK_OR_COMMENT.fullmatch(after_colon):
        raise _by_hand(path, header_line, "it is not a block of `key: value` lines", updates)
    if not (replay is None or isinstance(replay, dict)):
        raise _by_hand(path, header_line, "it is not a mapping", updates)
    present = replay or {}
    child_lines = [
        line for loc, line in doc.lines.items() if len(loc) == 2 and loc[0] == "replay_args"
    ]
    indent = (
        _indent(lines[min(child_lines) - 1])
        if child_lines and min(child_lines) > header_line
        else _indent(header) + step
    )
    inserted: list[str] = []
    for key, value in updates.items():
        line_no = doc.lines.get(("replay_args", key))
        if key not in present or line_no is None:
            inserted.append(f"{' ' * indent}{key}: {_yaml_value(value, None)}{newline}")
            continue
        if line_no <= header_line or not _single_line_value(lines, line_no - 1):
            raise _by_hand(path, line_no, f"{key} is not a one-line value", updates)
        replaced = _replace_scalar(lines[line_no - 1], key, value)
        if replaced is None:
            raise _by_hand(path, line_no, f"{key} is not a plain `key: value` line", updates)
        lines[line_no - 1] = replaced
    if inserted:
        if not lines[header_line - 1].endswith(("\n", "\r")):
            lines[header_line - 1] += newline
        lines[header_line:header_line] = inserted
    return "".join(lines)


def set_replay_args(config_path: Path, updates: dict[str, bool | str]) -> LoadedConfig:
    """Set ``replay_args.<key>`` in simulation.yaml at ``config_path`` and prove it: the file
    is edited in place (see :func:`_edited_config_text`), written atomically, then loaded
    with :func:`load_config`; if that fails, or does not give the values set, the original
    text is put back and a ConfigError says why. Returns the config as loaded after the edit.
    """
    from ..config import load_config

    try:
        before = load_config(config_path)
    except ConfigError as err:
        raise ConfigError(f"fix the config first, then run this again:\n{err}") from None
    original = _read_text(config_path)
    edited = _edited_config_text(config_path, original, updates)
    if edited == original:
        return before
    write_atomic(config_path, edited)
    try:
        loaded = load_config(config_path)
        replay = loaded.simulation.replay_args
        wrong = [key for key, value in updates.items() if getattr(replay, key) != value]
        if wrong:
            raise ConfigError(
                f"{config_path}: after the edit replay_args.{wrong[0]} does not read back as "
                f"{updates[wrong[0]]!r} (is it set elsewhere too?)"
            )
    except ConfigError as err:
        write_atomic(config_path, original)
        raise ConfigError(
            f"editing replay_args would leave {config_path} invalid, so the edit was undone "
            f"and the file is as it was:\n{err}"
        ) from None
    return loaded


# --------------------------------------------------------------------------- project


@dataclass
class _Project:
    """The project a ``record`` command works on: its config, root and ``.env``."""

    config_path: Path
    root: Path
    env_path: Path
    cwd: Path
    environ: dict[str, str] = field(default_factory=dict)
    """The recording variables set in this process's environment before anything read a
    ``.env`` (load_config puts the .env's values into os.environ)."""

    def show(self, path: Path) -> str:
        return _display(path, self.cwd)


def _project(config: Path, project: str | None, root: Path, command: str) -> _Project:
    """Find the project the way ``run experiment`` does; its root holds the ``.env``."""
    from ..config import project_root_for

    environ = {name: os.environ[name] for name in _VARS if name in os.environ}
    cwd = Path.cwd()
    config_path = resolve_config_path(config, project, root, cwd, command)
    project_root = project_root_for(config_path)
    return _Project(config_path, project_root, project_root / ".env", cwd, environ)


def _resolve(path: str, project_root: Path) -> Path:
    """A recording path as the project's tools read it: relative to the project root."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else project_root / candidate


def _recording_path_option(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> str | None:
    """``--file``: refuse an empty path (it would read as "not set")."""
    if value is not None and not value.strip():
        raise click.BadParameter("the recording file path is empty")
    return value


def _environment_notes(proj: _Project, values: dict[str, str]) -> list[str]:
    """Warnings for variables this shell already sets differently: they win over .env."""
    notes = []
    for name, wanted in values.items():
        current = proj.environ.get(name)
        if current is not None and current != wanted:
            notes.append(
                f"[WARN] {name} is set in this shell's environment ({current!r}); an "
                f"environment variable wins over .env, so unset it for {wanted!r} to apply"
            )
    return notes


def _echo_env_changes(proj: _Project, changes: list[EnvChange], warnings: list[str]) -> None:
    what = "Created" if all(change.action == "added" for change in changes) else "Updated"
    if all(change.action == "unchanged" for change in changes):
        what = "Already set in"
    click.echo(f"{what} {proj.show(proj.env_path)}:")
    for change in changes:
        click.echo(f"  {change.describe()}")
    for warning in warnings:
        click.echo(f"[WARN] {warning}")


# --------------------------------------------------------------------------- commands


@click.group("record", short_help="Record real call arguments (.env) and replay them.")
def record_group() -> None:
    """Record the arguments your application's agent is really called with, then replay them.

    \b
    1. fluxloop record enable     FLUXLOOP_RECORD_ARGS=true in the project's .env
    2. run your application (from the project root): each record_call_args() call
       appends one redacted line to the recording file
    3. fluxloop record disable --replay
                                  recording off; replay_args on in simulation.yaml
    4. fluxloop run experiment    replays the recorded calls with generated inputs

    `fluxloop record status` shows both halves and what the file holds.
    """


@record_group.command("enable", short_help="Turn recording on in the project's .env.")
@location_options(_LOCATION_HELP)
@click.option(
    "--file",
    "recording_file",
    default=None,
    callback=_recording_path_option,
    help="Recording file, written as given: relative paths are relative to the project "
    "root (where the application must be started).  [default: the .env's, else "
    "recordings/args_recording.jsonl]",
)
def record_enable(
    config: Path, project: str | None, root: Path, recording_file: str | None
) -> None:
    """Turn argument recording on: FLUXLOOP_RECORD_ARGS=true and FLUXLOOP_RECORDING_FILE in
    the project's .env (created if needed; every other line is kept as written).

    The application's FluxLoop SDK reads the FLUXLOOP_* settings of the .env in its working
    directory itself, so start it from the project root (or set the variables in its
    environment, which win over .env; FLUXLOOP_RECORDING_FILE may be absolute). replay_args
    is not changed; `fluxloop record disable --replay` turns it on once recording is done.
    """
    from dotenv import dotenv_values

    from ..sdk.recording import DEFAULT_RECORDING_FILE

    proj = _project(config, project, root, "fluxloop record enable")
    if recording_file is None:
        current = (
            dotenv_values(proj.env_path).get(RECORDING_FILE_VAR)
            if proj.env_path.is_file()
            else None
        )
        recording_file = current or DEFAULT_RECORDING_FILE
    values = {RECORD_ARGS_VAR: "true", RECORDING_FILE_VAR: recording_file}
    changes, warnings = set_dotenv_values(proj.env_path, values)
    _echo_env_changes(proj, changes, warnings)
    target = _resolve(recording_file, proj.root)
    click.echo(f"Recording is on: calls will be appended to {proj.show(target)}.")
    if not Path(recording_file).expanduser().is_absolute():
        click.echo(
            f"Start the application from the project root ({proj.show(proj.root) or '.'}): "
            f"the SDK resolves {recording_file} against its working directory (or make "
            f"{RECORDING_FILE_VAR} absolute)."
        )
    click.echo(
        "The SDK reads FLUXLOOP_* settings from the .env in the application's working "
        "directory; a variable already set in its environment wins over .env."
    )
    for note in _environment_notes(proj, values):
        click.echo(note)
    replay_note = _replay_while_recording_note(proj)
    if replay_note:
        click.echo(replay_note)
    click.echo("When done: fluxloop record disable --replay  (then: fluxloop run experiment)")


def _replay_while_recording_note(proj: _Project) -> str | None:
    """A warning when replay_args.enabled is on while recording is being turned on."""
    from ..config import load_config

    try:
        loaded = load_config(proj.config_path)
    except ConfigError:
        return None  # enable only edits .env; `record status` / `doctor` show config problems
    if not loaded.simulation.replay_args.enabled:
        return None
    return (
        f"[INFO] replay_args.enabled is true in {proj.show(proj.config_path)}: experiments "
        "keep replaying the file while the application records more into it (calls made "
        "inside an experiment are not recorded)"
    )


@record_group.command("disable", short_help="Turn recording off; --replay turns replay_args on.")
@location_options(_LOCATION_HELP)
@click.option(
    "--replay/--no-replay",
    "replay",
    default=None,
    help="Also set replay_args in simulation.yaml: --replay turns it on with recording_file "
    "pointing at the recording file, so the next `fluxloop run experiment` replays it; "
    "--no-replay turns it off.  [default: leave replay_args alone]",
)
def record_disable(config: Path, project: str | None, root: Path, replay: bool | None) -> None:
    """Turn argument recording off: FLUXLOOP_RECORD_ARGS=false in the project's .env
    (FLUXLOOP_RECORDING_FILE is kept, so `record enable` appends to the same file).

    With --replay, also set replay_args.enabled: true and replay_args.recording_file to that
    file in simulation.yaml, edited in place (comments, order and quoting kept) and
    re-validated; an edit that would leave the config invalid is undone.
    """
    from dotenv import dotenv_values

    from ..sdk.recording import DEFAULT_RECORDING_FILE

    proj = _project(config, project, root, "fluxloop record disable")
    changes, warnings = set_dotenv_values(proj.env_path, {RECORD_ARGS_VAR: "false"})
    _echo_env_changes(proj, changes, warnings)
    click.echo("Recording is off (for applications started after this change).")
    for note in _environment_notes(proj, {RECORD_ARGS_VAR: "false"}):
        click.echo(note)
    if replay is None:
        click.echo("replay_args unchanged; `fluxloop record status` shows it.")
        return
    updates: dict[str, bool | str] = {"enabled": replay}
    recording_file: str | None = None
    if replay:
        recording_file = (
            dotenv_values(proj.env_path).get(RECORDING_FILE_VAR) or DEFAULT_RECORDING_FILE
        )
        updates["recording_file"] = recording_file
    try:
        set_replay_args(proj.config_path, updates)
    except ConfigError as err:
        raise ConfigError(
            f"recording is off in {proj.show(proj.env_path)}, but replay_args was not "
            f"changed: {err}"
        ) from None
    shown = ", ".join(f"{key}: {_yaml_value(value, None)}" for key, value in updates.items())
    click.echo(f"Set in {proj.show(proj.config_path)}: replay_args {shown}")
    if recording_file is not None:
        click.echo(_replay_readiness(proj, _resolve(recording_file, proj.root)))


def _replay_readiness(proj: _Project, path: Path) -> str:
    """One line on whether the file replay now points at has calls to replay."""
    summary = _read_calls(path)
    if summary.error is not None:
        return f"[WARN] nothing to replay yet: {summary.error}"
    return (
        f"The next `fluxloop run experiment` replays the calls recorded for runner.target "
        f"({summary.total} call(s) in {proj.show(path)})."
    )


# --------------------------------------------------------------------------- status


@dataclass
class _Setting:
    """One recording variable as the application would see it, and where it came from."""

    value: str | None
    source: str
    """``environment``, ``default``, or the path of the ``.env`` file that sets it."""


@dataclass
class _TargetCalls:
    target: str | None
    """None: calls whose line names no target (the documented example shape)."""
    calls: int = 0
    first: str | None = None
    last: str | None = None


@dataclass
class _CallSummary:
    exists: bool
    size: int | None = None
    total: int = 0
    targets: list[_TargetCalls] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


def _setting(name: str, proj: _Project, env_files: Iterable[Path]) -> _Setting:
    """``name`` from this shell's environment if set there, else the first .env that sets
    it to a non-empty value (the project's, then its FluxLoop root's: the order
    ``run experiment`` loads them in), else the default."""
    from dotenv import dotenv_values

    if name in proj.environ:
        return _Setting(proj.environ[name], "environment")
    for env_file in env_files:
        if env_file.is_file():
            value = dotenv_values(env_file).get(name)
            if value:  # an empty value is skipped, as the loader skips it
                return _Setting(value, str(env_file))
    return _Setting(None, "default")


def _first_and_last(stamps: list[str]) -> tuple[str, str]:
    """The earliest and latest of ``stamps``: by time when they all parse as ISO 8601
    (``Z`` or an offset alike), else as text (the SDK writes one fixed UTC format)."""
    parsed: list[datetime] = []
    for stamp in stamps:
        try:
            when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            break
        parsed.append(when if when.tzinfo else when.replace(tzinfo=timezone.utc))
    if len(parsed) == len(stamps):
        order = sorted(range(len(stamps)), key=lambda i: parsed[i])
    else:
        order = sorted(range(len(stamps)), key=lambda i: stamps[i])
    return stamps[order[0]], stamps[order[-1]]


def _read_calls(path: Path) -> _CallSummary:
    """What the recording file holds, by target (counts and timestamps only, no values)."""
    from ..plan.recordings import read_recordings

    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return _CallSummary(exists=False, error="the file does not exist yet")
    except OSError as exc:
        return _CallSummary(exists=False, error=f"{path}: cannot read ({exc.strerror or exc})")
    try:
        recordings = read_recordings(path)
    except ConfigError as err:
        return _CallSummary(exists=True, size=size, error=str(err))
    except OSError as exc:
        return _CallSummary(
            exists=True, size=size, error=f"{path}: cannot read ({exc.strerror or exc})"
        )
    by_target: dict[str | None, _TargetCalls] = {}
    moments: dict[str | None, list[str]] = {}
    for call in recordings.calls:
        entry = by_target.setdefault(call.target, _TargetCalls(call.target))
        entry.calls += 1
        if call.timestamp:
            moments.setdefault(call.target, []).append(call.timestamp)
    for target, stamps in moments.items():
        by_target[target].first, by_target[target].last = _first_and_last(stamps)
    return _CallSummary(
        exists=True,
        size=size,
        total=len(recordings.calls),
        targets=sorted(by_target.values(), key=lambda t: (t.target is None, t.target or "")),
        warnings=list(recordings.warnings),
    )


def _size(size: int) -> str:
    """``512 bytes``, ``1.2 KiB``, ``3.4 MiB``."""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


def _same_file(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _status_report(proj: _Project) -> tuple[dict[str, Any], list[str], ConfigError | None]:
    """The status as JSON-ready data, its text lines, and the config's error if any."""
    from ..config import load_config
    from ..config.loader import fluxloop_root_for
    from ..redact import Redactor
    from ..sdk.recording import DEFAULT_RECORDING_FILE
    from ..sdk.settings import SDKConfig

    env_files = [proj.env_path]
    fluxloop_root = fluxloop_root_for(proj.root)
    if fluxloop_root is not None:
        env_files.append(fluxloop_root / ".env")
    flag = _setting(RECORD_ARGS_VAR, proj, env_files)
    file_setting = _setting(RECORDING_FILE_VAR, proj, env_files)
    flag_error: str | None = None
    enabled = False
    try:
        enabled = SDKConfig.from_env({RECORD_ARGS_VAR: flag.value or "false"}).record_args
    except ValueError as err:  # the SDK refuses it the same way at the application's start
        flag_error = str(err)
    recording_file = file_setting.value or DEFAULT_RECORDING_FILE
    path = _resolve(recording_file, proj.root)
    calls = _read_calls(path)

    config_error: ConfigError | None = None
    replay_data: dict[str, Any] | None = None
    secrets: frozenset[str] = frozenset()
    try:
        loaded = load_config(proj.config_path)
    except ConfigError as err:
        config_error = err
    else:
        secrets = loaded.secrets()
        replay = loaded.simulation.replay_args
        replay_path = _resolve(replay.recording_file, proj.root)
        replay_data = {
            "enabled": replay.enabled,
            "recording_file": replay.recording_file,
            "recording_file_path": str(replay_path),
            "override_param_path": replay.override_param_path,
            "same_file_as_recording": _same_file(replay_path, path),
        }
    # Reader messages may quote a line of the file: scrub anything secret-shaped first.
    redact = Redactor(extra_secrets=secrets).redact_text
    calls.warnings = [redact(warning) for warning in calls.warnings]
    calls.error = redact(calls.error) if calls.error is not None else None

    data: dict[str, Any] = {
        "config": str(proj.config_path),
        "project_root": str(proj.root),
        "env_file": str(proj.env_path),
        "env_file_exists": proj.env_path.is_file(),
        "recording": {
            "enabled": enabled,
            "value": flag.value,
            "source": flag.source,
            "error": flag_error,
            "file": recording_file,
            "file_source": file_setting.source,
            "path": str(path),
        },
        "calls": {
            "file_exists": calls.exists,
            "size_bytes": calls.size,
            "total": calls.total,
            "targets": [
                {"target": t.target, "calls": t.calls, "first": t.first, "last": t.last}
                for t in calls.targets
            ],
            "warnings": calls.warnings,
            "error": calls.error,
        },
        "replay": replay_data,
        "config_error": str(config_error) if config_error is not None else None,
    }
    notes = _advice(enabled, calls, replay_data)
    data["advice"] = notes
    return data, _status_lines(proj, data, calls, notes), config_error


def _advice(enabled: bool, calls: _CallSummary, replay: dict[str, Any] | None) -> list[str]:
    """What to look out for, given both halves."""
    notes: list[str] = []
    if replay is None:
        return notes
    if enabled and replay["enabled"]:
        notes.append(
            "[INFO] recording and replay are both on: experiments replay the file while the "
            "application adds to it (an experiment's own calls are not recorded)"
        )
    if replay["enabled"] and not Path(replay["recording_file_path"]).is_file():
        notes.append("[WARN] replay is on but its recording_file does not exist")
    if not enabled and not replay["enabled"] and calls.total:
        notes.append("To replay these calls: fluxloop record disable --replay")
    return notes


def _status_lines(
    proj: _Project, data: dict[str, Any], calls: _CallSummary, notes: list[str]
) -> list[str]:
    recording = data["recording"]
    lines = [f"Config: {proj.show(proj.config_path)}"]
    env_shown = proj.show(proj.env_path) + ("" if data["env_file_exists"] else " (not created yet)")
    lines.append(f"Env file: {env_shown}")
    if recording["error"]:
        state = f"invalid ({recording['error']})"
    else:
        state = "on" if recording["enabled"] else "off"
    if recording["source"] == "default":
        origin = f"{RECORD_ARGS_VAR} is not set"
    elif recording["source"] == "environment":
        origin = (
            f"{RECORD_ARGS_VAR}={recording['value']} in this shell's environment, which wins "
            "over .env"
        )
    else:
        origin = f"{RECORD_ARGS_VAR}={recording['value']} in {proj.show(Path(recording['source']))}"
    lines.append(f"Recording: {state}  ({origin})")
    if recording["file_source"] == "default":
        file_origin = "the default"
    elif recording["file_source"] == "environment":
        file_origin = f"{RECORDING_FILE_VAR} in this shell's environment"
    else:
        file_origin = f"{RECORDING_FILE_VAR} in {proj.show(Path(recording['file_source']))}"
    lines.append(f"Recording file: {proj.show(Path(recording['path']))}  ({file_origin})")
    if calls.error is not None:
        lines.append(f"Recorded calls: none ({calls.error})")
    else:
        assert calls.size is not None
        targets = len(calls.targets)
        lines.append(
            f"Recorded calls: {calls.total} ({targets} target{'s' * (targets != 1)}, "
            f"{_size(calls.size)})"
        )
        rows = [("TARGET", "CALLS", "FIRST", "LAST")]
        rows += [
            (t.target or "(no target)", str(t.calls), t.first or "-", t.last or "-")
            for t in calls.targets
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            lines.append(("  " + "  ".join(cells) + "  " + row[3]).rstrip())
    lines += [f"[WARN] {warning}" for warning in calls.warnings]
    replay = data["replay"]
    if replay is None:
        lines.append(f"Replay: unknown: {proj.show(proj.config_path)} has problems (below)")
    else:
        lines.append(
            f"Replay: {'on' if replay['enabled'] else 'off'}  "
            f"(replay_args in {proj.show(proj.config_path)})"
        )
        same = (
            "the recording file"
            if replay["same_file_as_recording"]
            else f"not the recording file: {proj.show(Path(replay['recording_file_path']))}"
        )
        lines.append(f"  recording_file: {replay['recording_file']}  ({same})")
        lines.append(f"  override_param_path: {replay['override_param_path']}")
    return lines + notes


@record_group.command(
    "status", short_help="Recording on/off, the file's calls per target, replay_args."
)
@location_options(_LOCATION_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def record_status(config: Path, project: str | None, root: Path, as_json: bool) -> None:
    """Show whether recording is on (and whether the environment or a .env says so), the
    recording file, how many calls it holds per target (first and last timestamp), the
    reader's warnings, and replay_args. No argument value is printed. Read-only; exit 0,
    or 4 when no config is found or it does not load (the report is printed first).
    """
    proj = _project(config, project, root, "fluxloop record status")
    data, lines, config_error = _status_report(proj)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        for line in lines:
            click.echo(line)
    if config_error is not None:
        raise config_error
