"""Archival throughput: finished scheduled_posts moved to the archive, attempts exported.

The run's database is seeded with SQL (`generate_series`): ~200k finished posts old
enough to archive, plus live ones that must stay (so each batch has to find its rows
among others), vacuumed; then Herald's own batch mover (worker/archival/posts.py,
the default 10,000 rows per transaction) runs in this process. A second metric times
exporting and dropping one expired post_attempts partition (~200k rows).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from bench.context import Context
from bench.registry import Measure, at_least, benchmark
from bench.servers import libpq

SEED_POSTS = """
INSERT INTO social_accounts (id, user_id, platform, external_id, access_token_enc)
SELECT md5('account' || a)::uuid, md5('user' || a)::uuid,
       (ARRAY['instagram', 'facebook', 'youtube'])[a %% 3 + 1], 'ext-' || a, 'gAAAAA-bench'
FROM generate_series(0, 99) AS a;

INSERT INTO scheduled_posts (user_id, social_account_id, platform, content, media,
                             scheduled_at, status, attempts, external_post_id,
                             published_at, created_at, updated_at)
SELECT md5('user' || (p %% 100))::uuid, md5('account' || (p %% 100))::uuid,
       (ARRAY['instagram', 'facebook', 'youtube'])[(p %% 100) %% 3 + 1],
       'Post ' || p || ': ' || repeat(md5(p::text), 1 + p %% 4),
       CASE WHEN p %% 5 = 0
            THEN jsonb_build_array('https://cdn.example.com/m/' || md5(p::text) || '.jpg')
            ELSE '[]'::jsonb END,
       now() - interval '200 days' - (p %% 10000) * interval '1 minute',
       (ARRAY['published', 'published', 'published', 'cancelled', 'dead'])[p %% 5 + 1],
       1 + p %% 3, 'ext_' || md5('x' || p), now() - interval '200 days',
       now() - interval '201 days', now() - interval '200 days'
FROM generate_series(1, %(finished)s) AS p;

-- Live rows: scheduled ahead, or finished too recently to archive.
INSERT INTO scheduled_posts (user_id, social_account_id, platform, content, scheduled_at,
                             status, updated_at)
SELECT md5('user' || (p %% 100))::uuid, md5('account' || (p %% 100))::uuid,
       (ARRAY['instagram', 'facebook', 'youtube'])[(p %% 100) %% 3 + 1], 'Live ' || p,
       now() + p * interval '1 second',
       CASE WHEN p %% 2 = 0 THEN 'scheduled' ELSE 'published' END, now()
FROM generate_series(1, %(live)s) AS p;
"""

SEED_ATTEMPTS = """
INSERT INTO post_attempts (attempted_at, post_id, attempt, outcome, http_status,
                           latency_ms, error, task_id, worker)
SELECT %(start)s::timestamptz + (t %% 40000) * interval '1 minute', md5('post' || t)::uuid,
       1 + t %% 3, CASE WHEN t %% 23 = 0 THEN 'transient_error' ELSE 'published' END,
       CASE WHEN t %% 23 = 0 THEN 503 ELSE 200 END, 40 + t %% 400,
       CASE WHEN t %% 23 = 0 THEN 'HTTP 503 from platform: "service unavailable"' END,
       md5('task' || t)::uuid::text, 'posts' || (t %% 4) || '@bench'
FROM generate_series(1, %(rows)s) AS t;
"""


def _seed(database_url: str, *, finished: int, live: int) -> None:
    with psycopg.connect(libpq(database_url), autocommit=True) as conn:
        with conn.transaction(), psycopg.ClientCursor(conn) as cursor:
            cursor.execute(SEED_POSTS, {"finished": finished, "live": live})
        conn.execute("VACUUM ANALYZE")


def _seed_old_partition(database_url: str, rows: int) -> str:
    """An expired month's partition with `rows` attempts; its name."""
    from worker.db.partitions import add_months, month_start, partition_name

    month = add_months(month_start(datetime.now(UTC).date()), -6)
    end = add_months(month, 1)
    name = partition_name(month)
    with psycopg.connect(libpq(database_url), autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {name} PARTITION OF post_attempts "
            f"FOR VALUES FROM ('{month.isoformat()}') TO ('{end.isoformat()}')"
        )
        with conn.transaction(), psycopg.ClientCursor(conn) as cursor:
            cursor.execute(SEED_ATTEMPTS, {"start": month.isoformat(), "rows": rows})
        conn.execute(f"VACUUM ANALYZE {name}")
    return name


def _backend_cpu(database_url: str) -> dict[int, float]:
    """CPU seconds used so far by each server backend of this database (local server)."""
    with psycopg.connect(libpq(database_url)) as conn:
        pids = [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
        ]
    tick = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # not local, or gone
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / tick
    return used


@benchmark("archival", target={"rows_per_s": at_least(50_000)})
def archival(ctx: Context) -> dict[str, Measure]:
    """Archival: finished posts moved per second (10k-row transactions), partition export."""
    from worker.archival.attempts import retire
    from worker.archival.posts import archive_posts
    from worker.db.engine import get_engine
    from worker.db.partitions import MonthlyPartition, partition_month
    from worker.settings import get_settings

    finished = ctx.size(200_000, 20_000)
    _seed(ctx.database_url, finished=finished, live=finished // 4)
    settings = get_settings()
    now = datetime.now(UTC)
    cutoff = now - timedelta(days=settings.archive_after_days)
    with get_engine().connect() as conn:  # the pooled connection the batches will use
        conn.exec_driver_sql("SELECT 1")
    cpu_before = _backend_cpu(ctx.database_url)
    moved = archive_posts(cutoff, settings.archive_batch_size, now)
    cpu_after = _backend_cpu(ctx.database_url)
    cpu = sum(used - cpu_before.get(pid, 0.0) for pid, used in cpu_after.items())
    if moved.archived != finished:
        raise AssertionError(f"archived {moved.archived} of {finished} rows")

    attempts = ctx.size(200_000, 20_000)
    name = _seed_old_partition(ctx.database_url, attempts)
    month = partition_month(name)
    assert month is not None
    started = time.perf_counter()
    export = retire(get_engine(), MonthlyPartition(name, month), ctx.work_dir / "archive")
    export_seconds = time.perf_counter() - started
    ctx.note("posts_archived", moved.archived)
    ctx.note("batches", moved.batches)
    ctx.note("backend_cpu_s", round(cpu, 3))
    ctx.note("load_average_1m", os.getloadavg()[0])
    ctx.note("attempts_exported", export.rows)
    ctx.note("export_bytes", export.bytes)
    return {
        "rows_per_s": Measure(moved.rows_per_s, "rows/s"),
        "seconds": Measure(moved.seconds, "s"),
        # What the server could do with a core to itself: these machines are shared.
        "rows_per_backend_cpu_s": Measure(moved.archived / cpu if cpu else 0.0, "rows/s"),
        "export_rows_per_s": Measure(export.rows / export_seconds, "rows/s"),
    }
