"""From runs to results: median/min/max, the baseline and ratio, targets; JSON and Markdown.

Pure functions over plain data, so they are tested without servers
(tests/unit/test_bench_report.py).
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench.registry import Benchmark, Measures, Target

Status = Literal["ok", "skipped", "failed"]


@dataclass(frozen=True)
class Summary:
    median: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            raise ValueError("no runs to summarise")
        return cls(statistics.median(values), min(values), max(values))


@dataclass(frozen=True)
class BaselineResult:
    benchmark: str
    metric: str
    unit: str
    runs: list[float]
    median: float


@dataclass(frozen=True)
class MetricResult:
    name: str
    unit: str
    runs: list[float]
    summary: Summary
    baseline: BaselineResult | None = None
    ratio: float | None = None
    target: Target | None = None
    met: bool | None = None


@dataclass
class BenchmarkResult:
    name: str
    description: str
    status: Status
    reason: str | None = None
    metrics: list[MetricResult] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)

    def series(self, metric: str) -> tuple[str, list[float]] | None:
        for result in self.metrics:
            if result.name == metric:
                return result.unit, result.runs
        return None


def collect(runs: Sequence[Measures]) -> dict[str, tuple[str, list[float]]]:
    """Metric -> (unit, one value per run), in first-seen order; units must agree."""
    series: dict[str, tuple[str, list[float]]] = {}
    for run in runs:
        for name, measure in run.items():
            unit, values = series.setdefault(name, (measure.unit, []))
            if measure.unit != unit:
                raise ValueError(f"metric {name!r} changed unit from {unit!r} to {measure.unit!r}")
            values.append(float(measure.value))
    return series


BaselineLookup = Callable[[str, str], tuple[str, list[float]] | None]


def metric_result(
    spec: Benchmark, name: str, unit: str, runs: list[float], lookup: BaselineLookup
) -> MetricResult:
    summary = Summary.of(runs)
    baseline: BaselineResult | None = None
    ratio: float | None = None
    ref = spec.baseline_for(name)
    if ref is not None and ref.metric is not None:
        found = lookup(ref.benchmark, ref.metric)
        if found is not None and found[1]:
            base_unit, base_runs = found
            base_median = statistics.median(base_runs)
            baseline = BaselineResult(ref.benchmark, ref.metric, base_unit, base_runs, base_median)
            if base_median != 0:
                ratio = summary.median / base_median
    target = spec.targets.get(name)
    met = target.met(summary.median, ratio) if target is not None else None
    return MetricResult(name, unit, runs, summary, baseline, ratio, target, met)


def build_result(
    spec: Benchmark,
    runs: Sequence[Measures],
    lookup: BaselineLookup,
    *,
    status: Status = "ok",
    reason: str | None = None,
    notes: Sequence[Mapping[str, Any]] = (),
) -> BenchmarkResult:
    """Summarise one benchmark's runs against its baseline's and its targets."""
    metrics = [
        metric_result(spec, name, unit, values, lookup)
        for name, (unit, values) in collect(runs).items()
    ]
    return BenchmarkResult(
        spec.name, spec.description, status, reason, metrics, [dict(note) for note in notes]
    )


def result_json(result: BenchmarkResult) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    for metric in result.metrics:
        metrics[metric.name] = {
            "unit": metric.unit,
            "runs": metric.runs,
            **asdict(metric.summary),
            "baseline": asdict(metric.baseline) if metric.baseline else None,
            "ratio": metric.ratio,
            "target": metric.target.describe() if metric.target else None,
            "met": metric.met,
        }
    return {
        "description": result.description,
        "status": result.status,
        "reason": result.reason,
        "metrics": metrics,
        "run_details": result.notes,
    }


def document(
    machine: Mapping[str, Any], invocation: Mapping[str, Any], results: Sequence[BenchmarkResult]
) -> dict[str, Any]:
    return {
        "machine": dict(machine),
        "invocation": dict(invocation),
        "benchmarks": {result.name: result_json(result) for result in results},
    }


def fmt(value: float | None) -> str:
    """A number for people: thousands separators, three significant digits below 1,000."""
    if value is None:
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if value == 0:
        return "0"
    return f"{value:.3g}"


def _met(met: bool | None, target: Target | None) -> str:
    if target is None:
        return "—"
    if met is None:
        return "n/a"
    return "yes" if met else "**no**"


def markdown(
    machine: Mapping[str, Any], invocation: Mapping[str, Any], results: Sequence[BenchmarkResult]
) -> str:
    """The results table, with the machine and command it came from."""
    lines = [
        "# Benchmark results",
        "",
        f"`{invocation.get('command', 'python -m bench')}` on {invocation.get('date', '?')}, "
        f"{invocation.get('repeat', '?')} run(s) each; git {machine.get('git_commit', '?')}.",
        "",
        f"Machine: {machine.get('cpu_model', '?')}, {machine.get('cpu_cores', '?')} cores, "
        f"{fmt(machine.get('memory_gib'))} GiB; Python {machine.get('python', '?')}, "
        f"Celery {machine.get('celery', '?')}, Redis {machine.get('redis_server', '?')}, "
        f"PostgreSQL {machine.get('postgres', '?')}, RabbitMQ {machine.get('rabbitmq') or '—'}. "
        f"Load average (1, 5, 15 min) at start {machine.get('load_average_at_start', '?')}, "
        f"at end {invocation.get('load_average_at_end', '?')}.",
        "",
        "| benchmark | metric | median | min | max | baseline median | ratio | target | met? |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for result in results:
        for m in result.metrics:
            base = f"{fmt(m.baseline.median)} ({m.baseline.benchmark})" if m.baseline else "—"
            ratio = f"{m.ratio:.2f}x" if m.ratio is not None else "—"
            target = m.target.describe() if m.target else "—"
            lines.append(
                f"| {result.name} | {m.name} ({m.unit}) | {fmt(m.summary.median)} "
                f"| {fmt(m.summary.min)} | {fmt(m.summary.max)} | {base} | {ratio} "
                f"| {target} | {_met(m.met, m.target)} |"
            )
    missing = [r for r in results if r.status != "ok"]
    if missing:
        lines += ["", "Not measured (or incomplete):", ""]
        lines += [f"* {r.name}: {r.status} — {r.reason}" for r in missing]
    return "\n".join(lines) + "\n"


def write(out_dir: Path, doc: Mapping[str, Any], table: str) -> tuple[Path, Path]:
    """Write latest.json and latest.md atomically (a reader never sees half a file)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = (out_dir / "latest.json", out_dir / "latest.md")
    texts = (json.dumps(doc, indent=2, ensure_ascii=False) + "\n", table)
    for path, text in zip(paths, texts, strict=True):
        temporary = path.with_suffix(path.suffix + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    return paths
