"""Pytest fixtures of the report tests; the helpers live in :mod:`report_fixtures` (a unique
module name, so other test directories' ``conftest`` modules cannot shadow them)."""
from report_fixtures import fixture_tables, published_root, runs_root  # noqa: F401
