"""A `herald archive` killed with SIGKILL mid-run loses nothing, duplicates nothing, and
a re-run finishes the job."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.fixtures.archival import OLD, scalar, seed_account, seed_posts
from tests.fixtures.cli import HERALD, run_herald
from tests.fixtures.waiting import wait_for
from worker.archival.archiver import LOCK_NAME, LOCK_TTL
from worker.archival.posts import COLUMNS
from worker.coordination.redis_client import get_redis
from worker.db.engine import get_engine
from worker.settings import get_settings

ROWS = 60_000
#: The smallest batch the settings allow: hundreds of transactions, so a kill lands in one.
BATCH = "100"

#: One hash over every post's columns, wherever the post is now.
CONTENT_HASH = (
    "SELECT md5(string_agg(r, '|' ORDER BY r)) FROM ("
    f" SELECT ROW({COLUMNS})::text AS r FROM scheduled_posts"
    f" UNION ALL SELECT ROW({COLUMNS})::text FROM scheduled_posts_archive) u"
)


def _open_transactions_of_others() -> int:
    """Backends on this database, other than idle ones (ours are idle in the pool)."""
    return int(
        scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state <> 'idle' AND backend_type = 'client backend'"
        )
    )


@pytest.mark.slow  # waits out the killed run's lock (LOCK_TTL)
def test_a_killed_run_loses_nothing_and_a_rerun_finishes(
    archive_env: dict[str, str], tmp_path: Path
) -> None:
    # Given many old finished posts
    with get_engine().begin() as conn:
        seed_posts(conn, seed_account(conn), ROWS, "published", OLD)
        original = conn.execute(text(CONTENT_HASH)).scalar_one()
    env = {**archive_env, "HERALD_ARCHIVE_BATCH_SIZE": BATCH}

    # When `herald archive` is killed (SIGKILL) once it has committed some batches
    with (tmp_path / "archive.log").open("wb") as log:
        process = subprocess.Popen([*HERALD, "archive"], env=env, stdout=log, stderr=log)
    try:
        wait_for(
            lambda: (
                process.poll() is not None
                or scalar("SELECT count(*) FROM scheduled_posts_archive") > 0
            ),
            timeout=60,
            interval=0.01,
            what="the first archived batch",
        )
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(10)
    assert process.returncode == -signal.SIGKILL, "it finished before it could be killed"
    # (its server backend notices the closed socket, rolls back and goes away)
    wait_for(lambda: _open_transactions_of_others() == 0, timeout=30, what="the backend to go")

    # Then every post is in exactly one table, unchanged, and work is left
    live = scalar("SELECT count(*) FROM scheduled_posts")
    archived = scalar("SELECT count(*) FROM scheduled_posts_archive")
    assert 0 < archived < ROWS and live + archived == ROWS
    assert (
        scalar("SELECT count(*) FROM scheduled_posts p JOIN scheduled_posts_archive a USING (id)")
        == 0
    )
    assert scalar(CONTENT_HASH) == original

    # When it runs again: at once it is refused (the dead run's lock lives out its TTL)
    refused = run_herald("archive", env=env)
    assert refused.returncode == 1 and "already running" in refused.stderr
    lock = get_settings().key("lock", LOCK_NAME)
    wait_for(lambda: not get_redis().exists(lock), timeout=LOCK_TTL + 15, what="the lock TTL")
    result = run_herald("archive", env=env, timeout=300)

    # Then it finishes the rest; counts add up; nothing lost or doubled
    assert result.returncode == 0, result.stderr
    posts = json.loads(result.stdout)["posts"]
    assert posts["archived"] == live and posts["before"] == live and posts["after"] == 0
    assert scalar("SELECT count(*) FROM scheduled_posts") == 0
    assert scalar("SELECT count(DISTINCT id) FROM scheduled_posts_archive") == ROWS
    assert scalar("SELECT count(*) FROM scheduled_posts_archive") == ROWS
    assert scalar(CONTENT_HASH) == original
