"""Safe output paths for experiment artifacts: no traversal, no symlink escape, no clash.

Everything here runs *before* any artifact file is written, so a bad experiment name or a
hostile output directory is rejected with a message that names the value and the fix.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from datetime import datetime
from pathlib import Path

from ..errors import OutputPathError

__all__ = [
    "MAX_NAME_LENGTH",
    "MAX_SUFFIX_LENGTH",
    "OutputPathError",
    "check_output_option",
    "check_writable",
    "folder_inside",
    "make_experiment_dir",
    "resolve_output_root",
    "slugify_suffix",
    "validate_experiment_name",
]

MAX_NAME_LENGTH = 255
MAX_SUFFIX_LENGTH = 64
# Collisions beyond this in one second mean something is looping; fail instead of spinning.
_MAX_COLLISIONS = 10_000

_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{i}" for i in range(1, 10)}
    | {f"LPT{i}" for i in range(1, 10)}
)
_DRIVE_PREFIX = re.compile(r"^[A-Za-z]:")
_UNSAFE_SUFFIX_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_REPEATED_DOTS = re.compile(r"\.{2,}")


def _name_problem(name: str) -> str | None:
    if not name.strip():
        return "is empty"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "contains a NUL or control character"
    if len(name) > MAX_NAME_LENGTH:
        return f"is {len(name)} characters long (the limit is {MAX_NAME_LENGTH})"
    if "/" in name or "\\" in name:
        return "contains a path separator"
    if name in {".", ".."} or name.startswith(".."):
        return "is a relative path component ('..')"
    if os.path.isabs(name) or _DRIVE_PREFIX.match(name):
        return "is an absolute path"
    if name.split(".")[0].strip().upper() in _WINDOWS_RESERVED:
        return "is a reserved device name on Windows"
    return None


def validate_experiment_name(name: str) -> str:
    """Return ``name`` unchanged if it is safe to use in an output path.

    Rejects: empty or blank names, NUL and control characters, more than 255 characters,
    path separators (``/`` or ``\\``), ``.``/``..``, absolute paths and drive prefixes, and
    Windows reserved device names (``CON``, ``PRN``, ``AUX``, ``NUL``, ``COM1``-``COM9``,
    ``LPT1``-``LPT9``, any case, with or without an extension).

    Raises:
        OutputPathError: naming the value, the problem and how to fix it.
    """
    if not isinstance(name, str):
        raise OutputPathError(
            f"experiment name must be a string, got {type(name).__name__} {name!r}; "
            "set `name:` in the config or pass --experiment-name"
        )
    problem = _name_problem(name)
    if problem is not None:
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise OutputPathError(
            f"invalid experiment name {shown!r}: it {problem}. Use a plain name such as "
            "'baseline-test' (letters, digits, spaces, '-', '_', '.'; no path separators, "
            "no '..'; at most 255 characters)"
        )
    return name


def slugify_suffix(name: str) -> str:
    """Turn a free experiment name into a safe directory suffix.

    The result is ASCII, uses only ``[A-Za-z0-9_.-]``, has no ``..``, does not start or end
    with ``.``, ``_`` or ``-``, and is at most 64 characters; it may be empty when nothing
    usable remains. Applying it twice gives the same result.
    """
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = _UNSAFE_SUFFIX_CHARS.sub("-", ascii_text)
    slug = _REPEATED_DOTS.sub(".", slug).strip("._-")
    return slug[:MAX_SUFFIX_LENGTH].strip("._-")


def resolve_output_root(
    output_directory: str | Path,
    project_root: Path | None,
    *,
    base: Path | None = None,
) -> Path:
    """Resolve an output directory to an absolute path, refusing symlink and ``..`` escapes.

    One rule for every way of giving the path (``output_directory`` in the config,
    ``--output-dir``, ``--fluxloop-output-dir``, ``Experiment.run(output_root=...)``):

    1. A relative path is taken from ``base`` (default: ``project_root``; the command line
       passes the current directory) and, after following ``..`` and symlinks, must stay
       inside ``base``.
    2. Once a path reaches inside ``project_root`` (relative or absolute, whatever symlinks
       spell the way there), following a symlink or ``..`` may not lead it back out.

    So an explicit absolute path (``~`` is expanded) may name any place outside the project,
    but no symlink can silently redirect results out of the directory they were meant for.

    Args:
        output_directory: the path as the user gave it.
        project_root: the project root; None when it is not known yet (a command-line option
            checked before the config is loaded): only rule 1 is applied then, and the
            loader applies rule 2 later to the same (unresolved) path.
        base: the directory a relative path is relative to.

    Raises:
        OutputPathError: for a NUL byte or an empty path, or an escape (the message names
            the value, where it leads, the directory it left and the fix).
    """
    text = os.fspath(output_directory)
    if "\x00" in text or not text.strip():
        raise OutputPathError(
            f"invalid output directory {text!r}: it is empty or contains a NUL byte; "
            "set output_directory / --output-dir to a directory path"
        )
    given = Path(text).expanduser()
    if given.is_absolute():
        path = given
    else:
        start = Path(base if base is not None else project_root or Path.cwd()).absolute()
        path = start / given
        fence = start.resolve()
        if not path.resolve().is_relative_to(fence):
            label = "the project root" if base is None else "the directory it is relative to"
            raise OutputPathError(
                f"output directory {text!r} resolves to {str(path.resolve())!r}, outside "
                f"{str(fence)!r}, {label} (through '..' or a symlink); "
                "use a directory inside it, or give the real location as an absolute "
                "output_directory / --output-dir to write elsewhere on purpose"
            )
    resolved = path.resolve()
    if project_root is not None:
        root = Path(project_root).resolve()
        entered = _entered(path, root)
        if entered is not None and not resolved.is_relative_to(root):
            raise OutputPathError(
                f"output directory {text!r} resolves to {str(resolved)!r}, outside the project "
                f"root {str(root)!r}: it reaches the project at {str(entered)!r}, then a "
                "symlink (or '..') leads it out; use a directory inside the project, or give "
                f"the real location ({str(resolved)!r}) as an absolute output_directory / "
                "--output-dir to write there on purpose"
            )
    return resolved


def _entered(path: Path, root: Path) -> Path | None:
    """The first prefix of absolute ``path`` that, symlinks followed, lies inside ``root``."""
    parts = path.parts
    for end in range(1, len(parts) + 1):
        prefix = Path(*parts[:end])
        # Each prefix is resolved as the OS would walk it, so a symlinked spelling of the
        # project (macOS /tmp -> /private/tmp, a symlinked home) still counts as entering it.
        if prefix.resolve().is_relative_to(root):
            return prefix
    return None


def check_output_option(flag: str, value: str | Path, base: Path) -> None:
    """Rule 1 of :func:`resolve_output_root` for an output directory given on a command line,
    where its ``base`` (the current directory) is known; the loader applies rule 2 later.

    Raises:
        OutputPathError: its message starts with ``flag``.
    """
    try:
        resolve_output_root(value, None, base=base)
    except OutputPathError as exc:
        raise OutputPathError(f"{flag}: {exc}") from None


def folder_inside(
    base: Path,
    name: str | Path,
    option: str = "--output",
    *,
    inside: str = "the experiment folder",
) -> Path:
    """``name`` resolved inside ``base``, however it is given (relative, with ``..``, absolute,
    through a symlink): where a command writes its results into an experiment folder.

    The result is a resolved path strictly below ``base`` (never ``base`` itself), so a
    ``..``, an absolute path elsewhere or a symlink leading out cannot make the command write
    outside the folder it was given.

    Args:
        base: the folder results must stay in.
        name: the path as the user gave it.
        option: the option (or setting) that gave ``name``, for the message.
        inside: what ``base`` is, for the message.

    Raises:
        OutputPathError: the path is empty or leads out of ``base`` (or is ``base``).
    """
    text = os.fspath(name)
    root = Path(base).resolve()
    if "\x00" in text or not text.strip():
        raise OutputPathError(f"{option} {text!r}: give a folder name inside {inside} {root}")
    target = (root / Path(text).expanduser()).resolve()
    if target == root or not target.is_relative_to(root):
        raise OutputPathError(
            f"{option} {text!r} leads to {target}: it must be inside {inside} {root} "
            f"(a relative name such as {option} results)"
        )
    return target


def _not_writable(path: Path, reason: object) -> OutputPathError:
    return OutputPathError(
        f"output directory {str(path)!r} is not writable: {reason}; "
        "choose another with output_directory / --output-dir"
    )


def check_writable(path: Path) -> Path:
    """Create ``path`` (with parents) and prove it is writable with a temporary file.

    Returns:
        ``path``, for chaining.

    Raises:
        OutputPathError: "output directory X is not writable: <reason>; choose another ...".
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        # Some filesystems (read-only mounts, ACLs, root bypassing mode bits) only tell the
        # truth when you actually write, so do that instead of trusting os.access().
        fd, probe = tempfile.mkstemp(prefix=".fluxloop-write-test-", dir=path)
        try:
            os.write(fd, b"ok")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise _not_writable(path, exc.strerror or exc) from exc
    return path


def make_experiment_dir(root: Path, now: datetime, suffix: str | None = None) -> Path:
    """Create a fresh ``exp_<YYYYMMDD_HHMMSS>[_<suffix>]`` directory under ``root``.

    The directory is created with an exclusive ``os.mkdir``; when the name is taken (another
    run in the same second, even concurrently in another process) ``_2``, ``_3`` ... is
    appended. An existing directory is never reused. ``suffix`` is passed through
    :func:`slugify_suffix` so it can never escape ``root``.

    Raises:
        OutputPathError: when ``root`` cannot be created or written.
    """
    root = Path(root)
    base = f"exp_{now:%Y%m%d_%H%M%S}"
    slug = slugify_suffix(suffix) if suffix else ""
    if slug:
        base = f"{base}_{slug}"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _not_writable(root, exc.strerror or exc) from exc
    for attempt in range(1, _MAX_COLLISIONS + 1):
        candidate = root / (base if attempt == 1 else f"{base}_{attempt}")
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue
        except OSError as exc:
            raise _not_writable(root, exc.strerror or exc) from exc
        return candidate
    raise OutputPathError(
        f"could not create a unique experiment directory {base!r} in {str(root)!r} after "
        f"{_MAX_COLLISIONS} attempts; clean up the output directory or choose another"
    )
