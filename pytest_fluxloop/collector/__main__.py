"""``python -m pytest_fluxloop.collector``: the collector without the ``fluxloop`` CLI."""

from __future__ import annotations

from .serve import main

if __name__ == "__main__":
    raise SystemExit(main())
