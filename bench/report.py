"""From runs to results: median/min/max, the baseline and ratio, targets; JSON and Markdown.

Pure functions over plain data, so they are tested without servers
(tests/unit/test_bench_report.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import statistics
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
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


def _met(met: bool | None, target: str | None) -> str:
    if target is None:
        return "—"
    if met is None:
        return "n/a"
    return "yes" if met else "**no**"


def _rows(name: str, entry: Mapping[str, Any]) -> list[str]:
    """Table rows of one benchmark's JSON entry (this invocation's or a carried one)."""
    rows = []
    for metric, m in entry.get("metrics", {}).items():
        baseline = m.get("baseline")
        base = f"{fmt(baseline['median'])} ({baseline['benchmark']})" if baseline else "—"
        ratio = f"{m['ratio']:.2f}x" if m.get("ratio") is not None else "—"
        target = m.get("target")
        rows.append(
            f"| {name} | {metric} ({m['unit']}) | {fmt(m['median'])} "
            f"| {fmt(m['min'])} | {fmt(m['max'])} | {base} | {ratio} "
            f"| {target or '—'} | {_met(m.get('met'), target)} |"
        )
    return rows


def _carried_line(name: str, entry: Mapping[str, Any]) -> str:
    when = entry.get("measured") or {}
    quick = " (quick)" if when.get("quick") else ""
    line = (
        f"* {name}: `{when.get('command', '?')}` on {when.get('date', '?')}, "
        f"{when.get('repeat', '?')} run(s){quick}, git {when.get('git_commit', '?')}"
    )
    if entry.get("status", "ok") != "ok":
        line += f"; {entry['status']} — {entry.get('reason')}"
    return line


def markdown(
    machine: Mapping[str, Any],
    invocation: Mapping[str, Any],
    results: Sequence[BenchmarkResult],
    carried: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """The results table, with the machine and command it came from.

    `carried`: JSON entries of benchmarks this invocation did not run, kept from the
    previous file (see `merge`); their rows follow, each marked with when it was measured.
    """
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
        lines += _rows(result.name, result_json(result))
    for name, entry in (carried or {}).items():
        lines += _rows(f"{name} †", entry)
    missing = [r for r in results if r.status != "ok"]
    if missing:
        lines += ["", "Not measured (or incomplete):", ""]
        lines += [f"* {r.name}: {r.status} — {r.reason}" for r in missing]
    if carried:
        lines += ["", "† Not run by this command; kept from an earlier one:", ""]
        lines += [_carried_line(name, entry) for name, entry in carried.items()]
    return "\n".join(lines) + "\n"


def measured(machine: Mapping[str, Any], invocation: Mapping[str, Any]) -> dict[str, Any]:
    """What an entry carries about the invocation that measured it."""
    keys = ("command", "date", "repeat", "quick")
    return {**{k: invocation.get(k) for k in keys}, "git_commit": machine.get("git_commit")}


def load(path: Path) -> dict[str, Any] | None:
    """A previous results document, or None when there is none (or it is unreadable)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("benchmarks"), dict) else None


def merge(
    previous: Mapping[str, Any] | None, doc: Mapping[str, Any], order: Sequence[str]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """This invocation's document plus the previous one's entries it did not re-measure.

    Running a few benchmarks must not erase the others' figures. Only benchmarks still
    registered (`order`, which also fixes their order) are kept; each entry says which
    invocation measured it (`measured`). Returns the document and the carried entries.
    """
    stamp = measured(doc.get("machine", {}), doc.get("invocation", {}))
    fresh = {name: {**entry, "measured": stamp} for name, entry in doc["benchmarks"].items()}
    carried: dict[str, dict[str, Any]] = {}
    if previous is not None:
        old_stamp = measured(previous.get("machine", {}), previous.get("invocation", {}))
        for name, entry in previous["benchmarks"].items():
            if name in order and name not in fresh:
                carried[name] = {**entry, "measured": entry.get("measured") or old_stamp}
    rank = {name: i for i, name in enumerate(order)}
    everything = {**fresh, **carried}
    ordered = dict(sorted(everything.items(), key=lambda item: rank.get(item[0], len(rank))))
    carried = {name: entry for name, entry in ordered.items() if name in carried}
    return {**doc, "benchmarks": ordered}, carried


@contextlib.contextmanager
def locked(out_dir: Path) -> Iterator[None]:
    """Hold the results directory while reading, merging and writing: two benchmark
    invocations finishing together would otherwise drop each other's entries."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # Beside the results would leave a file for git to see; the temp dir is per machine.
    digest = hashlib.sha256(str(out_dir.resolve()).encode()).hexdigest()[:16]
    with (Path(tempfile.gettempdir()) / f"herald-bench-{digest}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
