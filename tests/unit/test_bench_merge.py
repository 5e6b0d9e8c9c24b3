"""Running a few benchmarks keeps the others' results: latest.json is merged, not replaced.

Synthetic documents only (no servers).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.registry import Benchmark, Measure, Measures
from bench.report import BenchmarkResult, build_result, document, load, markdown, merge

MACHINE = {"cpu_model": "Test CPU", "cpu_cores": 2, "git_commit": "abc123"}

ORDER = ["celery_noop_redis", "celery_noop_amqp", "publish_amqp_bare", "backup"]


def _result(name: str, value: float) -> BenchmarkResult:
    runs: list[Measures] = [{"tasks_per_s": Measure(value, "tasks/s")}]
    spec = Benchmark(name, lambda _ctx: {}, f"{name} description")
    return build_result(spec, runs, lambda _name, _metric: None)


def _doc(command: str, date: str, *results: BenchmarkResult) -> dict[str, Any]:
    invocation = {"command": command, "date": date, "repeat": 3, "quick": False}
    return document(MACHINE, invocation, list(results))


def test_entries_not_run_now_are_kept_with_the_invocation_that_measured_them() -> None:
    # Given a previous file with the AMQP pair and a benchmark since removed
    old = _doc(
        "python -m bench --only publish_amqp_bare",
        "2026-01-01T00:00:00+00:00",
        _result("celery_noop_amqp", 500),
        _result("publish_amqp_bare", 200),
        _result("schedule_lag_200", 1),
    )
    # When only the Redis noop runs now
    new = _doc("python -m bench --only celery_noop_redis", "2026-02-01T00:00:00+00:00")
    new["benchmarks"].update(_doc("x", "y", _result("celery_noop_redis", 900))["benchmarks"])
    merged, carried = merge(old, new, ORDER)
    # Then the AMQP figures stay, in registry order, stamped with their own invocation,
    # and the unregistered one is dropped
    assert list(merged["benchmarks"]) == [
        "celery_noop_redis",
        "celery_noop_amqp",
        "publish_amqp_bare",
    ]
    assert list(carried) == ["celery_noop_amqp", "publish_amqp_bare"]
    kept = merged["benchmarks"]["publish_amqp_bare"]
    assert kept["metrics"]["tasks_per_s"]["median"] == 200
    assert kept["measured"]["date"] == "2026-01-01T00:00:00+00:00"
    assert merged["benchmarks"]["celery_noop_redis"]["measured"]["date"].startswith("2026-02")
    assert merged["invocation"]["command"] == "python -m bench --only celery_noop_redis"


def test_a_benchmark_run_again_replaces_its_old_entry_and_keeps_its_stamp_over_merges() -> None:
    first = _doc("a", "2026-01-01", _result("celery_noop_amqp", 500), _result("backup", 3))
    second = _doc("b", "2026-02-01", _result("celery_noop_amqp", 700))
    merged, _ = merge(first, second, ORDER)
    third = _doc("c", "2026-03-01", _result("celery_noop_redis", 900))
    merged, carried = merge(merged, third, ORDER)
    amqp = merged["benchmarks"]["celery_noop_amqp"]
    assert amqp["metrics"]["tasks_per_s"]["median"] == 700
    assert amqp["measured"]["command"] == "b"  # not re-stamped by the later merge
    assert carried["backup"]["measured"]["command"] == "a"


def test_without_a_previous_file_the_document_is_this_run_only(tmp_path: Path) -> None:
    assert load(tmp_path / "latest.json") is None
    (tmp_path / "latest.json").write_text("{not json")
    assert load(tmp_path / "latest.json") is None
    doc = _doc("a", "2026-01-01", _result("celery_noop_redis", 900))
    merged, carried = merge(None, doc, ORDER)
    assert list(merged["benchmarks"]) == ["celery_noop_redis"] and carried == {}
    (tmp_path / "latest.json").write_text(json.dumps(merged))
    assert load(tmp_path / "latest.json") == json.loads(json.dumps(merged))


def test_the_table_marks_carried_rows_and_says_when_they_were_measured() -> None:
    old = _doc("python -m bench --only backup", "2026-01-01", _result("backup", 3))
    now = [_result("celery_noop_redis", 900)]
    _, carried = merge(old, _doc("python -m bench", "2026-02-01", *now), ORDER)
    lines = markdown(MACHINE, {"command": "python -m bench"}, now, carried).splitlines()
    assert "| backup † | tasks_per_s (tasks/s) | 3 | 3 | 3 | — | — | — | — |" in lines
    assert "* backup: `python -m bench --only backup` on 2026-01-01, 3 run(s), git abc123" in lines
