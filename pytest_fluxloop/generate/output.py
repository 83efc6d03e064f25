"""Write the inputs file: reproducibly, atomically, never over an existing file unasked.

The file is the third inputs-file shape ``run experiment`` reads
(:mod:`pytest_fluxloop.plan.inputs`): ``inputs: [{input, persona, persona_description,
strategy, base_index, metadata}]`` plus the ``stats`` and ``generation_config`` blocks. It
holds no wall-clock time (the earlier generator's ``generated_at``): with it, the same config
and seed could never give the same bytes. The YAML is dumped with fixed settings (key order
kept, unicode as is, a fixed line width), so the same result is always the same file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import yaml

from .core import GenerationResult
from .errors import GenerationError, OutputExistsError

__all__ = ["HEADER", "YAML_WIDTH", "check_output_path", "render_inputs_file", "write_inputs_file"]

#: The comment the file starts with.
HEADER = (
    "# Inputs for `fluxloop run experiment`, written by `fluxloop generate inputs`.\n"
    "# No timestamp on purpose: the same config and seed give a byte-identical file.\n"
    "# generation_config says how it was made; stats what was removed or fell short.\n"
)
#: Line width of the YAML: fixed, so line breaks never depend on the environment.
YAML_WIDTH = 100
# A new file gets the usual permissions (mkstemp's are 0600, meant for secrets).
_NEW_FILE_MODE = 0o644


def render_inputs_file(result: GenerationResult) -> str:
    """The file's text: :data:`HEADER`, then ``inputs``, ``stats``, ``generation_config``."""
    body = yaml.safe_dump(
        result.document(),
        sort_keys=False,
        allow_unicode=True,
        width=YAML_WIDTH,
        default_flow_style=False,
    )
    return HEADER + body


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when it is inside it, for messages."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def check_output_path(path: Path, *, overwrite: bool, display: str | None = None) -> None:
    """Check that ``path`` may be written, before spending time (or requests) generating.

    Raises:
        OutputExistsError: it exists and ``overwrite`` is False.
        GenerationError: it is a folder.
    """
    shown = display or _shown(path)
    if path.is_dir():
        raise GenerationError(f"{shown} is a folder; pass --output with a file name")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{shown} exists; pass --overwrite to replace it")


def write_inputs_file(
    result: GenerationResult, path: Path, *, overwrite: bool, display: str | None = None
) -> Path:
    """Write ``result`` to ``path`` atomically; return the path written.

    The text goes to a temporary file in the same folder, is flushed to disk, then renamed
    over ``path`` (``os.replace``): a reader sees the old file or the new one, never half of
    one, and a failure leaves no temporary file behind. Missing parent folders are created.

    Args:
        result: what :func:`~.core.generate_inputs` returned.
        path: the file to write.
        overwrite: replace an existing file (else it is refused and left unchanged).
        display: how to name the file in messages (default: relative to the working folder).

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
        GenerationError: the folder or file cannot be written.
    """
    shown = display or _shown(path)
    check_output_path(path, overwrite=overwrite, display=shown)
    data = render_inputs_file(result).encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GenerationError(
            f"cannot create the folder of {shown}: {exc.strerror or exc}"
        ) from None
    mode = _NEW_FILE_MODE
    with contextlib.suppress(OSError):
        mode = path.stat().st_mode & 0o777  # an overwritten file keeps its permissions
    try:
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise GenerationError(f"cannot write {shown}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise GenerationError(f"cannot write {shown}: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return path
