"""``python -m pytest_fluxloop.cli``: same as the ``fluxloop`` script."""

from __future__ import annotations

from pytest_fluxloop.cli import main

if __name__ == "__main__":
    main()
