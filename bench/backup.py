"""Herald's backup (dump + exact row counts + sha256 + fsynced write, no verify) of the
same seeded database as `pg_dump_baseline`, which it is compared with: the wrapping
should cost little next to pg_dump itself (target: at most 1.1x its time).

Timed from the call to `take_backup` until its row says succeeded: tool discovery,
the snapshot's row counts and the catalog writes are all inside.
"""

from __future__ import annotations

import time

from bench.context import Context
from bench.pgdump_baseline import database_bytes, seed_database
from bench.registry import Measure, benchmark, ratio_at_most

_MB = 1_000_000


@benchmark(
    "backup",
    baseline="pg_dump_baseline",
    target={"seconds": ratio_at_most(1.1)},
)
def backup(ctx: Context) -> dict[str, Measure]:
    """`herald backup now` without verify, on ~200k seeded rows, vs bare pg_dump -Fc."""
    from worker.backups.dump import take_backup

    posts = ctx.size(100_000, 10_000)
    rows = seed_database(ctx.database_url, posts=posts, attempts=posts)
    size = database_bytes(ctx.database_url)
    settings = ctx.herald_settings(backup_dir=ctx.work_dir / "backups", backup_verify=False)
    started = time.perf_counter()
    row = take_backup(settings)
    seconds = time.perf_counter() - started
    assert row.status == "succeeded" and row.size_bytes is not None, row
    ctx.note("rows", rows)
    ctx.note("counted_rows", sum(row.row_counts.values()))
    return {
        "seconds": Measure(seconds, "s"),
        "mb_per_s": Measure(size / _MB / seconds, "MB/s"),
        "database_mb": Measure(size / _MB, "MB"),
        "dump_mb": Measure(row.size_bytes / _MB, "MB"),
    }
