"""Helpers shared by the test folders (servers, project builders, CLI runners)."""
