"""Safe YAML reading with file/line positions for every key.

Why not plain ``yaml.safe_load``: we also need (a) the line of each key, so validation errors
can point at it, (b) an error for duplicate keys (PyYAML silently keeps the last one, which
would ignore a config key), and (c) caps against huge files and alias bombs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

MAX_YAML_BYTES = 10 * 1024 * 1024
MAX_EXPANDED_NODES = 1_000_000

KeyPath = tuple[str | int, ...]


@dataclass
class YamlDocument:
    """Parsed YAML data with the 1-based line of every key path.

    A document can also carry keys grafted from another file (:meth:`graft`): a section
    written in simulation.yaml but validated with input.yaml's keys keeps pointing at
    simulation.yaml's lines.
    """

    path: Path
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    origins: dict[KeyPath, Path] = field(default_factory=dict)
    """Key paths (and everything under them) that come from another file than ``path``."""

    def line_of(self, loc: KeyPath) -> int | None:
        """Line of the deepest known prefix of ``loc`` (errors may point inside a value)."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return None

    def path_of(self, loc: KeyPath) -> Path:
        """The file that holds ``loc``: ``path``, unless a prefix was grafted from another."""
        for end in range(len(loc), 0, -1):
            origin = self.origins.get(tuple(loc[:end]))
            if origin is not None:
                return origin
        return self.path

    def where(self, loc: KeyPath) -> str:
        """``file:line`` for messages."""
        line = self.line_of(loc)
        path = self.path_of(loc)
        return f"{path}:{line}" if line else str(path)

    def graft(self, other: YamlDocument, key: str) -> None:
        """Take the line numbers of top-level ``key`` (and all below it) from ``other``,
        so messages about it name ``other``'s file and lines."""
        for loc, line in other.lines.items():
            if loc[:1] == (key,):
                self.lines[loc] = line
        self.origins[(key,)] = other.origins.get((key,), other.path)


def load_yaml(path: Path) -> YamlDocument:
    """Read ``path`` with the safe loader; raise ConfigError naming file and line on any problem."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if size > MAX_YAML_BYTES:
        raise ConfigError(
            f"{path}: file is {size} bytes; config and input files are capped at "
            f"{MAX_YAML_BYTES} bytes"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_yaml(text, path)


def parse_yaml(text: str, path: Path) -> YamlDocument:
    """Parse YAML ``text`` (named ``path`` in messages)."""
    try:
        # PyYAML checks characters while building the loader, so this is inside the try.
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise ConfigError(
            f"{path}:{line}: invalid YAML: unacceptable character #x{exc.character:04x} "
            "(control characters must be escaped inside a double-quoted string)"
        ) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(path, None, {})
        lines: dict[KeyPath, int] = {(): node.start_mark.line + 1}
        _check_node(node, path, (), lines, {})
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = exc.problem or str(exc)
        hint = ""
        if "could not determine a constructor" in problem:
            hint = " (tags like !!python/... are refused: FluxLoop reads YAML with safe_load)"
        raise ConfigError(f"{where}: invalid YAML: {problem}{hint}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    doc = YamlDocument(path, data, lines)
    # Only an escape ("\ud800", "\U0000d800") can put a surrogate in YAML text: the UTF-8
    # decoder refuses encoded ones. Skip the walk when there is no escape at all.
    if "\\u" in text or "\\U" in text:
        _check_surrogates(doc)
    return doc


_SURROGATE = re.compile("[\ud800-\udfff]")
_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")
_MAX_LISTED = 20


def _check_surrogates(doc: YamlDocument) -> None:
    """Join escaped surrogate pairs into their character; refuse lone surrogates.

    JSON-style escapes write a character beyond U+FFFF as a pair (``"\ud83d\ude00"``, as
    ``json.dumps`` does); PyYAML keeps the two halves, which no file and no pydantic string
    accepts, so each pair becomes the one character it spells. A lone half is not a
    character at all (pydantic would only say "unable to parse raw data as a unicode
    string"): every place holding one is named, with the fix.
    """
    found: list[str] = []
    doc.data = _walk_surrogates(doc, doc.data, (), found, set())
    if not found:
        return
    listed = found[:_MAX_LISTED]
    more = f"\n  ... and {len(found) - _MAX_LISTED} more" if len(found) > _MAX_LISTED else ""
    message = (
        f"{doc.path}: {len(found)} text(s) hold a lone surrogate (half of a UTF-16 pair, "
        'from an escape such as "\\ud800"; it is not a character and cannot be stored as '
        "UTF-8). Write the character itself, or both halves of its pair "
        '("\\ud83d\\ude00" is one emoji), or remove the escape:\n  ' + "\n  ".join(listed) + more
    )
    # The message itself must be printable: show each surrogate as the escape that made it.
    raise ConfigError(_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", message))


def _walk_surrogates(
    doc: YamlDocument, value: Any, loc: KeyPath, found: list[str], seen: set[int]
) -> Any:
    """``value`` with surrogate pairs joined (containers changed in place); lone surrogates
    are added to ``found`` as ``file:line: key: what``."""
    if isinstance(value, str):
        return _joined(doc, value, loc, found, "")
    if not isinstance(value, (dict, list)) or id(value) in seen:
        return value  # a scalar, or a container met again through an alias
    seen.add(id(value))
    if isinstance(value, list):
        for index, item in enumerate(value):
            value[index] = _walk_surrogates(doc, item, (*loc, index), found, seen)
        return value
    items = list(value.items())
    value.clear()
    for key, item in items:
        new_key = _joined(doc, key, (*loc, key), found, "the key ") if isinstance(key, str) else key
        value[new_key] = _walk_surrogates(doc, item, (*loc, key), found, seen)
    return value


def _joined(doc: YamlDocument, text: str, loc: KeyPath, found: list[str], what: str) -> str:
    if not _SURROGATE.search(text):
        return text
    text = _PAIR.sub(lambda m: m.group().encode("utf-16", "surrogatepass").decode("utf-16"), text)
    lone = _SURROGATE.search(text)
    if lone:
        start = lone.start()
        shown = text if len(text) <= 60 else "..." + text[max(0, start - 25) : start + 25] + "..."
        found.append(
            f"{doc.where(loc)}: {what}{_dotted(loc) or '(top level)'}: lone surrogate "
            f"U+{ord(lone.group()):04X} at character {start + 1} of '{shown}'"
        )
    return text


def _check_node(
    node: yaml.Node,
    path: Path,
    loc: KeyPath,
    lines: dict[KeyPath, int],
    sizes: dict[int, int],
) -> int:
    """Record key lines, refuse duplicate keys, and bound the alias-expanded size."""
    known = sizes.get(id(node))
    if known is not None:
        # An alias: shared nodes are counted again, as a consumer walking the data would.
        return known
    sizes[id(node)] = 1  # guards against recursive aliases while walking
    total = 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.tag)
            line = key_node.start_mark.line + 1
            if key != "<<" and key_node.tag != "tag:yaml.org,2002:str":
                kind = key_node.tag.rsplit(":", 1)[-1]
                raise ConfigError(
                    f"{path}:{line}: key {key!r} at '{_dotted(loc) or '(top level)'}' is read by "
                    f"YAML as a {kind}, not a string; put it in quotes ('{key}':)"
                )
            if key == "<<":
                total += _check_node(value_node, path, loc, lines, sizes)
                continue
            if key in seen:
                raise ConfigError(
                    f"{path}:{line}: duplicate key '{_dotted((*loc, key))}' "
                    f"(first set on line {seen[key]}); remove one of them"
                )
            seen[key] = line
            lines.setdefault((*loc, key), line)
            total += _check_node(value_node, path, (*loc, key), lines, sizes)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.setdefault((*loc, index), item.start_mark.line + 1)
            total += _check_node(item, path, (*loc, index), lines, sizes)
    if total > MAX_EXPANDED_NODES:
        raise ConfigError(
            f"{path}:{node.start_mark.line + 1}: YAML expands to more than "
            f"{MAX_EXPANDED_NODES} values (alias bomb?); refusing to load it"
        )
    sizes[id(node)] = total
    return total


def _dotted(loc: KeyPath) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


dotted = _dotted
