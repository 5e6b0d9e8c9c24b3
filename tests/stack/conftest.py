"""The stack test brings its own servers: the machine's PostgreSQL and Redis, reached
by the containers, not the per-test databases the other integration tests get."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _servers_outside_unit_tests() -> None:
    """Overrides tests/fixtures/services.py's: no test database, no test namespace."""
