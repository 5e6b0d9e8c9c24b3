"""The benchmark report: aggregation, baselines and ratios, targets, the table, the files.

Synthetic run data only (no servers), except the smoke test at the end, which runs
`python -m bench --only celery_noop_redis --quick` against the test servers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from bench.registry import (
    BaselineRef,
    Benchmark,
    Measure,
    Measures,
    at_least,
    at_most,
    benchmark,
    plan,
    ratio_at_least,
)
from bench.report import (
    BaselineLookup,
    Summary,
    build_result,
    collect,
    document,
    fmt,
    markdown,
    write,
)

ROOT = Path(__file__).resolve().parents[2]
MACHINE = {"cpu_model": "Test CPU", "cpu_cores": 2, "memory_gib": 4.0, "git_commit": "abc123"}
INVOCATION = {"command": "python -m bench --repeat 3", "date": "2026-01-01T00:00:00+00:00"}


def _noop(_ctx: object) -> Measures:
    return {}


def _spec(name: str, **kw: object) -> Benchmark:
    return Benchmark(name, _noop, f"{name} description", **kw)  # type: ignore[arg-type]


def _runs(metric: str, unit: str, *values: float) -> list[Measures]:
    return [{metric: Measure(value, unit)} for value in values]


def _lookup(data: Mapping[str, Mapping[str, tuple[str, list[float]]]]) -> BaselineLookup:
    return lambda name, metric: data.get(name, {}).get(metric)


NOOP = {"celery_noop_redis": {"tasks_per_s": ("tasks/s", [1000.0, 900.0, 1100.0])}}


def test_summary_is_median_min_max_of_the_runs() -> None:
    assert Summary.of([3.0, 1.0, 2.0]) == Summary(2.0, 1.0, 3.0)
    assert Summary.of([4.0, 1.0, 2.0, 3.0]).median == 2.5
    with pytest.raises(ValueError, match="no runs"):
        Summary.of([])


def test_collect_keeps_one_series_per_metric_and_refuses_a_changed_unit() -> None:
    runs = [{"a": Measure(1, "s"), "b": Measure(2, "MB")}, {"a": Measure(3, "s")}]
    assert collect(runs) == {"a": ("s", [1.0, 3.0]), "b": ("MB", [2.0])}
    with pytest.raises(ValueError, match="changed unit"):
        collect([{"a": Measure(1, "s")}, {"a": Measure(1, "ms")}])


def test_measure_refuses_a_non_finite_number() -> None:
    with pytest.raises(ValueError, match="finite"):
        Measure(float("nan"), "s")


def test_ratio_is_our_median_over_the_baseline_median_and_meets_a_ratio_target() -> None:
    # Given a benchmark compared with the noop baseline, with a ratio target of 0.4
    spec = _spec(
        "publish",
        baseline=BaselineRef("celery_noop_redis", None),
        targets={"tasks_per_s": ratio_at_least(0.4)},
    )
    # When our runs' median is 500 and the baseline's 1000
    result = build_result(spec, _runs("tasks_per_s", "tasks/s", 450, 500, 600), _lookup(NOOP))
    # Then
    (metric,) = result.metrics
    assert metric.summary == Summary(500.0, 450.0, 600.0)
    assert metric.baseline is not None
    assert metric.baseline.median == 1000.0
    assert metric.baseline.runs == [1000.0, 900.0, 1100.0]
    assert metric.ratio == pytest.approx(0.5)
    assert metric.met is True


def test_a_ratio_below_its_target_is_not_met() -> None:
    spec = _spec(
        "publish",
        baseline=BaselineRef("celery_noop_redis", None),
        targets={"tasks_per_s": ratio_at_least(0.4)},
    )
    result = build_result(spec, _runs("tasks_per_s", "tasks/s", 300, 350), _lookup(NOOP))
    assert result.metrics[0].ratio == pytest.approx(0.325)
    assert result.metrics[0].met is False


def test_a_baseline_metric_of_another_name_is_found_by_mapping() -> None:
    spec = _spec(
        "publish", baseline={"posts_per_s": BaselineRef("celery_noop_redis", "tasks_per_s")}
    )
    result = build_result(spec, _runs("posts_per_s", "posts/s", 800), _lookup(NOOP))
    assert result.metrics[0].ratio == pytest.approx(0.8)


def test_without_the_baseline_measured_there_is_no_ratio_and_the_target_is_undecided() -> None:
    spec = _spec(
        "publish",
        baseline=BaselineRef("celery_noop_redis", None),
        targets={"tasks_per_s": ratio_at_least(0.4)},
    )
    result = build_result(spec, _runs("tasks_per_s", "tasks/s", 500), _lookup({}))
    assert (result.metrics[0].baseline, result.metrics[0].ratio, result.metrics[0].met) == (
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("target", "median", "met"),
    [
        (at_least(20_000), 25_000, True),
        (at_least(20_000), 19_999, False),
        (at_most(1.0), 0.8, True),
        (at_most(1.0), 1.2, False),
    ],
)
def test_absolute_targets_compare_the_median(target: object, median: float, met: bool) -> None:
    spec = _spec("claim", targets={"x": target})
    result = build_result(spec, _runs("x", "u", median), _lookup({}))
    assert result.metrics[0].met is met
    assert result.metrics[0].ratio is None


def test_the_markdown_table_has_one_row_per_metric_with_baseline_ratio_and_verdict() -> None:
    noop = build_result(
        _spec("celery_noop_redis"), _runs("tasks_per_s", "tasks/s", 1000, 900, 1100), _lookup({})
    )
    publish = build_result(
        _spec(
            "publish",
            baseline=BaselineRef("celery_noop_redis", None),
            targets={"tasks_per_s": ratio_at_least(0.6)},
        ),
        _runs("tasks_per_s", "tasks/s", 450, 500, 600),
        _lookup(NOOP),
    )
    skipped = build_result(_spec("publish_amqp"), [], _lookup({}), status="skipped", reason="no")

    table = markdown(MACHINE, INVOCATION, [noop, publish, skipped])

    lines = table.splitlines()
    assert (
        "| benchmark | metric | median | min | max | baseline median | ratio | target | met? |"
        in lines
    )
    assert (
        "| celery_noop_redis | tasks_per_s (tasks/s) | 1,000 | 900 | 1,100 | — | — | — | — |"
        in lines
    )
    assert (
        "| publish | tasks_per_s (tasks/s) | 500 | 450 | 600 | 1,000 (celery_noop_redis) "
        "| 0.50x | ≥ 0.6x baseline | **no** |"
    ) in lines
    assert "* publish_amqp: skipped — no" in lines
    assert "Test CPU, 2 cores" in table
    assert "`python -m bench --repeat 3`" in table


def test_numbers_are_formatted_for_people() -> None:
    assert [fmt(v) for v in (12_345.6, 999.4, 12.345, 0.012345, 0, None)] == [
        "12,346",
        "999",
        "12.3",
        "0.0123",
        "0",
        "—",
    ]


def test_the_json_document_carries_runs_summary_baseline_and_verdict(tmp_path: Path) -> None:
    publish = build_result(
        _spec(
            "publish",
            baseline=BaselineRef("celery_noop_redis", None),
            targets={"tasks_per_s": ratio_at_least(0.4)},
        ),
        _runs("tasks_per_s", "tasks/s", 450, 500, 600),
        _lookup(NOOP),
        notes=[{"repetition": 1}],
    )
    doc = document(MACHINE, INVOCATION, [publish])

    json_path, md_path = write(tmp_path, doc, "table\n")

    loaded = json.loads(json_path.read_text())
    metric = loaded["benchmarks"]["publish"]["metrics"]["tasks_per_s"]
    assert metric["runs"] == [450.0, 500.0, 600.0]
    assert (metric["median"], metric["min"], metric["max"]) == (500.0, 450.0, 600.0)
    assert metric["baseline"]["median"] == 1000.0
    assert metric["ratio"] == pytest.approx(0.5)
    assert (metric["target"], metric["met"]) == ("≥ 0.4x baseline", True)
    assert loaded["machine"]["cpu_model"] == "Test CPU"
    assert md_path.read_text() == "table\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.json", "latest.md"]


def test_declaration_mistakes_fail_when_the_module_is_imported() -> None:
    with pytest.raises(ValueError, match="needs a baseline"):
        benchmark("x_ratio", target={"a": ratio_at_least(1)})
    with pytest.raises(ValueError, match="expected 'benchmark'"):
        benchmark("x_bad", baseline="Not A Name")
    with pytest.raises(TypeError, match="must be a Target"):
        benchmark("x_type", target={"a": 3})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="lowercase"):
        benchmark("Bad-Name")


def test_the_plan_runs_baselines_first_and_adds_those_a_selection_needs() -> None:
    registry = {
        "publish": _spec("publish", baseline=BaselineRef("noop", None)),
        "noop": _spec("noop"),
        "memory": _spec("memory"),
    }
    assert [s.name for s in plan(["publish"], registry)] == ["noop", "publish"]
    assert [s.name for s in plan(None, registry)] == ["noop", "memory", "publish"]
    with pytest.raises(ValueError, match="unknown benchmark"):
        plan(["nope"], registry)


def test_smoke_bench_quick_writes_results(tmp_path: Path) -> None:
    # Given the test servers (REDIS_URL / DATABASE_URL, set by the fixtures)
    env = {k: v for k, v in os.environ.items() if k != "HERALD_NAMESPACE"}
    # When the quick noop baseline runs
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--only",
            "celery_noop_redis",
            "--quick",
            "--output",
            str(tmp_path),
        ],
        cwd=ROOT,
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    # Then it measured something and wrote both files
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "latest.json").read_text())["benchmarks"]["celery_noop_redis"]
    assert result["status"] == "ok"
    assert result["metrics"]["tasks_per_s"]["median"] > 0
    assert "celery_noop_redis" in (tmp_path / "latest.md").read_text()
