"""Bare `pg_dump -Fc` of a seeded Herald database: what Herald's backup is compared with.

The run's database is seeded (bench/seed_posts.sql: ~100k scheduled_posts and ~100k
post_attempts), vacuumed, then dumped by the pg_dump whose major version matches the
server's (an older pg_dump refuses a newer server; a newer one is not what we ship).
MB/s is the database's size (`pg_database_size`) over the dump's wall time.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import warnings
from pathlib import Path

import psycopg

from bench.context import Context
from bench.registry import Measure, benchmark
from bench.servers import libpq

SEED_SQL = Path(__file__).with_name("seed_posts.sql")
_MB = 1_000_000


def seed_database(database_url: str, *, posts: int, attempts: int, accounts: int = 100) -> int:
    """Fill a migrated database with realistic rows, then VACUUM ANALYZE; return rows added."""
    params = {"accounts": accounts, "posts": posts, "attempts": attempts}
    with psycopg.connect(libpq(database_url), autocommit=True) as conn:
        with conn.transaction(), psycopg.ClientCursor(conn) as cursor:
            cursor.execute(SEED_SQL.read_text(), params)
        conn.execute("VACUUM ANALYZE")
    return accounts + posts + attempts


def server_major(database_url: str) -> int:
    with psycopg.connect(libpq(database_url)) as conn:
        row = conn.execute("SHOW server_version_num").fetchone()
    assert row is not None
    return int(row[0]) // 10000


def _candidates(major: int) -> list[Path]:
    found = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pgserver warns about XDG_RUNTIME_DIR at import
            import pgserver._commands as pg_commands
        found.append(Path(pg_commands.POSTGRES_BIN_PATH) / "pg_dump")
    except ImportError:
        pass
    found.append(Path(f"/usr/lib/postgresql/{major}/bin/pg_dump"))
    on_path = shutil.which("pg_dump")
    if on_path:
        found.append(Path(on_path))
    return found


def _major_of(pg_dump: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(pg_dump), "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\(PostgreSQL\) (\d+)", out)
    return int(match.group(1)) if match else None


def matching_pg_dump(database_url: str) -> Path:
    """The pg_dump of the server's major version (embedded: pgserver's own)."""
    major = server_major(database_url)
    tried = []
    for candidate in _candidates(major):
        version = _major_of(candidate) if candidate.exists() else None
        if version == major:
            return candidate
        tried.append(f"{candidate} ({version or 'absent'})")
    raise RuntimeError(f"no pg_dump for PostgreSQL {major}; tried {', '.join(tried)}")


def timed_pg_dump(pg_dump: Path, database_url: str, out: Path) -> float:
    """Seconds `pg_dump -Fc` takes to write `out`."""
    started = time.perf_counter()
    subprocess.run(
        [str(pg_dump), "-Fc", "--no-password", "-f", str(out), "-d", libpq(database_url)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    return time.perf_counter() - started


def database_bytes(database_url: str) -> int:
    with psycopg.connect(libpq(database_url)) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    return int(row[0])


@benchmark("pg_dump_baseline")
def pg_dump_baseline(ctx: Context) -> dict[str, Measure]:
    """Bare `pg_dump -Fc` of a seeded database (~200k rows), matching major (baseline)."""
    posts = ctx.size(100_000, 10_000)
    rows = seed_database(ctx.database_url, posts=posts, attempts=posts)
    pg_dump = matching_pg_dump(ctx.database_url)
    size = database_bytes(ctx.database_url)
    out = ctx.work_dir / "bench.dump"
    seconds = timed_pg_dump(pg_dump, ctx.database_url, out)
    ctx.note("pg_dump", str(pg_dump))
    ctx.note("rows", rows)
    return {
        "seconds": Measure(seconds, "s"),
        "mb_per_s": Measure(size / _MB / seconds, "MB/s"),
        "database_mb": Measure(size / _MB, "MB"),
        "dump_mb": Measure(out.stat().st_size / _MB, "MB"),
    }
