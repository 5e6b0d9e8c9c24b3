"""The DB pool gauges follow real checkouts from this process's PostgreSQL pool."""

from __future__ import annotations

from contextlib import ExitStack

from prometheus_client import REGISTRY
from sqlalchemy import text

from worker.db.engine import get_engine
from worker.observability.task_metrics import instrument_db_pool


def checked_out() -> float:
    return REGISTRY.get_sample_value("herald_db_pool_checked_out", {"role": "test"}) or 0.0


def test_pool_gauges_count_checked_out_connections(database: str) -> None:
    # Given this process's pool counted under role "test"
    instrument_db_pool("test")
    assert REGISTRY.get_sample_value("herald_db_pool_capacity", {"role": "test"}) == 10
    engine = get_engine()

    # When three connections are in use at once, then given back
    with ExitStack() as stack:
        for _ in range(3):
            stack.enter_context(engine.connect()).execute(text("SELECT 1"))
        assert checked_out() == 3
    # Then the gauge follows, and counting twice never double-counts
    assert checked_out() == 0
    instrument_db_pool("test")
    with engine.connect():
        assert checked_out() == 1
    assert checked_out() == 0
