"""`python -m bench`: run the registered benchmarks N times each and write the results.

Baselines run first, in the same invocation as what is compared with them. Results of
benchmarks not selected this time are kept from the previous latest.json (marked with
the invocation that measured them), so `--only` never erases the others. Each run
gets fresh servers state (bench/servers.py) and a context whose processes and clients
are stopped when it ends, even on error or Ctrl-C / SIGTERM. A benchmark that fails
is reported as failed and the others still run; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench import machine, report
from bench.context import Context, in_process_env, subprocess_env
from bench.registry import Benchmark, Measures, Skip, discover, plan
from bench.servers import ROOT, Servers

#: Where latest.json and latest.md are written.
RESULTS_DIR = ROOT / "bench" / "results"
DEFAULT_REPEAT = 5


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", nargs="+", action="extend", metavar="NAME", help="run these")
    parser.add_argument("--repeat", type=int, help=f"runs per benchmark (default {DEFAULT_REPEAT})")
    parser.add_argument("--quick", action="store_true", help="1 run, small sizes (smoke test)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR, help="results directory")
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else DEFAULT_REPEAT
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def _log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _raise_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    # Unwinds like Ctrl-C does, so every started process is stopped on the way out.
    _log("SIGTERM: stopping what was started, then exiting")
    raise SystemExit(128 + signum)


class Runner:
    def __init__(self, servers: Servers, *, repeat: int, quick: bool) -> None:
        self.servers = servers
        self.repeat = repeat
        self.quick = quick
        self.results: dict[str, report.BenchmarkResult] = {}

    def lookup(self, name: str, metric: str) -> tuple[str, list[float]] | None:
        found = self.results.get(name)
        return found.series(metric) if found is not None else None

    def run(self, spec: Benchmark) -> report.BenchmarkResult:
        runs: list[Measures] = []
        notes: list[dict[str, Any]] = []
        status: report.Status = "ok"
        reason: str | None = None
        for repetition in range(1, self.repeat + 1):
            try:
                measures, note = self._once(spec, repetition)
            except Skip as exc:
                status, reason = "skipped", str(exc)
                _log(f"{spec.name}: skipped: {reason}")
                break
            except Exception as exc:
                status, reason = "failed", f"run {repetition}: {type(exc).__name__}: {exc}"
                _log(f"{spec.name}: FAILED\n{traceback.format_exc()}")
                break
            runs.append(measures)
            notes.append(note)
            shown = ", ".join(f"{k}={report.fmt(m.value)} {m.unit}" for k, m in measures.items())
            _log(f"{spec.name} run {repetition}/{self.repeat}: {shown}")
        result = report.build_result(
            spec, runs, self.lookup, status=status, reason=reason, notes=notes
        )
        self.results[spec.name] = result
        return result

    def _once(self, spec: Benchmark, repetition: int) -> tuple[Measures, dict[str, Any]]:
        work_dir = Path(tempfile.mkdtemp(prefix=f"herald-bench-{spec.name}-"))
        ok = False
        try:
            with self.servers.fresh_run() as run:
                env = subprocess_env(self.servers.redis_url, run.database_url, run.namespace)
                ctx = Context(
                    benchmark=spec.name,
                    repetition=repetition,
                    quick=self.quick,
                    redis_url=self.servers.redis_url,
                    admin_database_url=self.servers.admin_database_url,
                    database_url=run.database_url,
                    amqp_url=self.servers.amqp_url,
                    namespace=run.namespace,
                    work_dir=work_dir,
                    env=env,
                )
                started = time.perf_counter()
                with in_process_env(env), ctx.stack:
                    measures = dict(spec.function(ctx))
                missing = sorted(set(spec.targets) - set(measures))
                if missing:
                    raise ValueError(f"targets name metrics it did not return: {missing}")
                note = {
                    "repetition": repetition,
                    "seconds": round(time.perf_counter() - started, 3),
                }
                ok = True
                return measures, {**note, **ctx.notes}
        finally:
            if ok:
                shutil.rmtree(work_dir, ignore_errors=True)
            else:
                _log(f"{spec.name}: logs kept in {work_dir}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    registry = discover()
    if args.list:
        for spec in registry.values():
            base = f" (baseline: {', '.join(sorted(spec.depends_on()))})" if spec.baseline else ""
            print(f"{spec.name}: {spec.description}{base}")
        return 0
    try:
        selected = plan(args.only, registry)
    except ValueError as exc:
        _log(str(exc))
        return 2
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    started = datetime.now(UTC)
    try:
        with Servers() as servers:
            about = machine.describe(
                servers.redis_url, servers.admin_database_url, servers.amqp_url
            )
            runner = Runner(servers, repeat=args.repeat, quick=args.quick)
            for spec in selected:
                _log(f"{spec.name}: {args.repeat} run(s){' (quick)' if args.quick else ''}")
                runner.run(spec)
    finally:
        signal.signal(signal.SIGTERM, previous)
    invocation = {
        "command": shlex.join(["python", "-m", "bench", *(argv or sys.argv[1:])]),
        "date": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "repeat": args.repeat,
        "quick": args.quick,
        "servers": servers.sources,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    results = [runner.results[spec.name] for spec in selected]
    # Others' figures stay: a run of a few benchmarks updates only their entries.
    with report.locked(args.output):
        doc, carried = report.merge(
            report.load(args.output / "latest.json"),
            report.document(about, invocation, results),
            order=[spec.name for spec in plan(None, registry)],
        )
        table = report.markdown(about, invocation, results, carried)
        json_path, md_path = report.write(args.output, doc, table)
    print(md_path.read_text(), end="")
    _log(f"wrote {json_path} and {md_path}")
    return 1 if any(result.status == "failed" for result in results) else 0
