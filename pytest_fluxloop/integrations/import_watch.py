"""Run a callback the moment a package is imported, without importing it first.

Cassettes must see every call of a provider SDK, including one an agent imports inside a
function after the run started; importing every installed SDK up front to hook it would cost
a second or more per run for an SDK nothing uses. A finder placed first on ``sys.meta_path``
answers only for the watched names: it asks the finders after it for the real spec and wraps
its loader, so the package loads exactly as it would have, and the callback runs once its
module has executed. The watch ends with that import.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

__all__ = ["unwatch", "watch"]

_lock = threading.Lock()
_watched: dict[str, Callable[[str], None]] = {}


class _Loader(Loader):
    """The package's own loader, plus the callback after its module has executed."""

    def __init__(self, inner: Loader, name: str, callback: Callable[[str], None]) -> None:
        self._inner = inner
        self._name = name
        self._callback = callback

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        self._callback(self._name)

    def __getattr__(self, name: str) -> Any:  # resources, is_package ... are the loader's
        return getattr(self._inner, name)


class _Finder(MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        with _lock:
            callback = _watched.pop(fullname, None)
        if callback is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _Loader(spec.loader, fullname, callback)
                return spec
        return None


_finder = _Finder()


def watch(names: Iterable[str], callback: Callable[[str], None]) -> None:
    """Call ``callback(name)`` once each package of ``names`` not imported yet has been
    (names already imported are not watched: the caller handles them now)."""
    with _lock:
        for name in names:
            if name not in sys.modules:
                _watched[name] = callback
        if _watched and _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)


def unwatch() -> None:
    """Stop watching (tests)."""
    with _lock:
        _watched.clear()
        if _finder in sys.meta_path:
            sys.meta_path.remove(_finder)
