"""The benchmark registry: `@benchmark`, what a benchmark returns, and targets.

Light on purpose (dataclasses only): `bench/__init__.py` re-exports it, and the
baseline Celery worker imports the `bench` package when it loads its app.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from bench.context import Context

#: Modules under bench/ that `discover()` does not import: the entry point, and the
#: baseline Celery app (it belongs to its worker subprocess, not to the harness).
NOT_DISCOVERED = frozenset({"__main__", "celery_baseline"})

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Measure:
    """One metric of one run: a number and its unit (`"tasks/s"`, `"s"`, `"MiB"`)."""

    value: float
    unit: str

    def __post_init__(self) -> None:
        if not math.isfinite(self.value):
            raise ValueError(f"a measure must be a finite number, got {self.value!r}")


Measures = Mapping[str, Measure]
BenchmarkFunction = Callable[["Context"], Measures]


class Skip(Exception):  # noqa: N818 - read as `raise Skip("AMQP_URL not set")`
    """Raised by a benchmark that cannot run here (a server is missing); the reason is kept."""


@dataclass(frozen=True)
class Target:
    """What the median (or, with `of_ratio`, the ratio to the baseline) must reach."""

    op: Literal[">=", "<="]
    value: float
    of_ratio: bool = False

    def describe(self) -> str:
        sign = "≥" if self.op == ">=" else "≤"
        return f"{sign} {self.value:g}x baseline" if self.of_ratio else f"{sign} {self.value:g}"

    def met(self, median: float, ratio: float | None) -> bool | None:
        """None when the ratio it needs could not be measured."""
        observed = ratio if self.of_ratio else median
        if observed is None:
            return None
        return observed >= self.value if self.op == ">=" else observed <= self.value


def at_least(value: float) -> Target:
    return Target(">=", value)


def at_most(value: float) -> Target:
    return Target("<=", value)


def ratio_at_least(value: float) -> Target:
    return Target(">=", value, of_ratio=True)


def ratio_at_most(value: float) -> Target:
    return Target("<=", value, of_ratio=True)


@dataclass(frozen=True)
class BaselineRef:
    benchmark: str
    metric: str | None  # None: the metric of the same name


@dataclass(frozen=True)
class Benchmark:
    name: str
    function: BenchmarkFunction
    description: str
    targets: Mapping[str, Target] = field(default_factory=dict)
    baseline: BaselineRef | Mapping[str, BaselineRef] | None = None

    def baseline_for(self, metric: str) -> BaselineRef | None:
        """The baseline metric `metric` is compared with, if any."""
        if self.baseline is None:
            return None
        if isinstance(self.baseline, BaselineRef):
            return BaselineRef(self.baseline.benchmark, self.baseline.metric or metric)
        return self.baseline.get(metric)

    def depends_on(self) -> set[str]:
        if self.baseline is None:
            return set()
        if isinstance(self.baseline, BaselineRef):
            return {self.baseline.benchmark}
        return {ref.benchmark for ref in self.baseline.values()}


REGISTRY: dict[str, Benchmark] = {}


def _parse_ref(text: str) -> BaselineRef:
    name, _, metric = text.partition(".")
    if not _NAME.match(name) or (metric and not _NAME.match(metric)):
        raise ValueError(f"baseline {text!r}: expected 'benchmark' or 'benchmark.metric'")
    return BaselineRef(name, metric or None)


def _parse_baseline(
    baseline: str | Mapping[str, str] | None,
) -> BaselineRef | dict[str, BaselineRef] | None:
    if baseline is None or isinstance(baseline, str):
        return None if baseline is None else _parse_ref(baseline)
    refs = {metric: _parse_ref(ref) for metric, ref in baseline.items()}
    for metric, ref in refs.items():
        if ref.metric is None:
            refs[metric] = BaselineRef(ref.benchmark, metric)
    return refs


def benchmark(
    name: str,
    *,
    target: Mapping[str, Target] | None = None,
    baseline: str | Mapping[str, str] | None = None,
    description: str | None = None,
) -> Callable[[BenchmarkFunction], BenchmarkFunction]:
    """Register `function(ctx) -> {metric: Measure}` as benchmark `name`.

    `target` maps a metric to a `Target` (`at_least`, `at_most`, `ratio_at_least`,
    `ratio_at_most`). `baseline` is a benchmark name (each metric is compared with the
    baseline's metric of the same name) or `{our_metric: "benchmark.metric"}`; the
    harness runs the baseline in the same invocation. Mistakes fail at import.
    """
    if not _NAME.match(name):
        raise ValueError(f"benchmark name {name!r}: lowercase letters, digits and _ only")
    targets = dict(target or {})
    for metric, wanted in targets.items():
        if not isinstance(wanted, Target):
            raise TypeError(f"{name}: target for {metric!r} must be a Target (use at_least, ...)")
    refs = _parse_baseline(baseline)
    if refs is None and any(t.of_ratio for t in targets.values()):
        raise ValueError(f"{name}: a ratio target needs a baseline")

    def register(function: BenchmarkFunction) -> BenchmarkFunction:
        if name in REGISTRY and REGISTRY[name].function is not function:
            raise ValueError(f"benchmark {name!r} is registered twice")
        doc = (function.__doc__ or "").strip().splitlines()
        REGISTRY[name] = Benchmark(
            name, function, description or (doc[0] if doc else ""), targets, refs
        )
        return function

    return register


def discover() -> dict[str, Benchmark]:
    """Import every module of the bench package (so their decorators run); check baselines."""
    import bench

    for module in pkgutil.iter_modules(bench.__path__):
        if module.name not in NOT_DISCOVERED and not module.name.startswith("_"):
            importlib.import_module(f"bench.{module.name}")
    for spec in REGISTRY.values():
        for dependency in spec.depends_on():
            if dependency not in REGISTRY:
                raise ValueError(f"{spec.name}: baseline {dependency!r} is not a benchmark")
            if REGISTRY[dependency].depends_on():
                raise ValueError(f"{spec.name}: baseline {dependency!r} has a baseline itself")
    return REGISTRY


def plan(selected: list[str] | None, registry: Mapping[str, Benchmark]) -> list[Benchmark]:
    """The benchmarks to run, baselines first (they are measured in the same invocation)."""
    names = selected or list(registry)
    unknown = [name for name in names if name not in registry]
    if unknown:
        known = ", ".join(sorted(registry))
        raise ValueError(f"unknown benchmark(s) {', '.join(unknown)}; known: {known}")
    wanted = {name for name in names}
    wanted |= {dep for name in names for dep in registry[name].depends_on()}
    baselines = [spec for spec in registry.values() if spec.name in wanted and not spec.baseline]
    others = [spec for spec in registry.values() if spec.name in wanted and spec.baseline]
    return baselines + others
