"""Root conftest: load pytester for the plugin tests (pytest allows pytest_plugins only here)."""

pytest_plugins = ["pytester"]
