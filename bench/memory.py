"""Resident memory of an idle Herald worker (per process and in total) and of beat.

The worker is `herald run`'s posts worker at concurrency 2; it is measured once it
answers a ping and its tree's RSS has settled; beat once it holds redbeat's lock
and its RSS has settled. RSS counts pages shared after fork in every process, so the
sum over a prefork tree overstates what it costs: USS (pages only that process
holds) is reported beside it.
"""

from __future__ import annotations

import statistics

from bench.context import Context
from bench.processes import ProcessMemory, stable_tree_memory
from bench.registry import Measure, benchmark

#: Seconds to wait for RSS to settle once the process is up.
SETTLE_TIMEOUT_S = 30.0


def _mib(value: float) -> Measure:
    return Measure(value, "MiB")


def _settled(ctx: Context, what: str, pid: int) -> list[ProcessMemory]:
    sample, settled = stable_tree_memory(pid, timeout=SETTLE_TIMEOUT_S)
    ctx.note(f"{what}_processes", [vars(p) for p in sample])
    if not settled:
        ctx.note(f"{what}_warning", f"RSS still moving after {SETTLE_TIMEOUT_S:.0f}s")
    return sample


@benchmark("idle_memory")
def idle_memory(ctx: Context) -> dict[str, Measure]:
    """RSS of an idle posts worker (prefork, -c 2) per process and total, and of beat."""
    from worker.local.processes import beat_argv, worker_argv

    app = ctx.herald_app()
    worker = ctx.start("worker", worker_argv(("posts",), "idle", 2))
    beat = ctx.start("beat", beat_argv())
    ctx.wait_for_worker(app, worker, "idle")
    lock_key = f"{ctx.namespace}:redbeat::lock"
    client = ctx.redis()

    def beat_leads() -> bool:
        beat.check_alive()
        return bool(client.exists(lock_key))

    ctx.wait_for(beat_leads, timeout=60, what="beat to take redbeat's lock", interval=0.2)

    workers = _settled(ctx, "worker", worker.pid)
    children = [p for p in workers if p.role == "child"]
    main = next(p for p in workers if p.role == "main")
    beats = _settled(ctx, "beat", beat.pid)
    worker.check_alive()
    beat.check_alive()
    return {
        "worker_rss_total": _mib(sum(p.rss_mib for p in workers)),
        "worker_rss_main": _mib(main.rss_mib),
        "worker_rss_per_child": _mib(statistics.mean(p.rss_mib for p in children)),
        "worker_uss_total": _mib(sum(p.uss_mib for p in workers)),
        "worker_processes": Measure(len(workers), "processes"),
        "beat_rss": _mib(sum(p.rss_mib for p in beats)),
        "beat_uss": _mib(sum(p.uss_mib for p in beats)),
    }
