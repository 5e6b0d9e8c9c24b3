"""Backups end to end: `herald backup now | list | verify | restore` as a user runs them,
the `maintenance.backup` task in a real worker, the lock, retention, encryption — all
against the real PostgreSQL server and the real pg_dump / pg_restore."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from celery import Celery
from cryptography.fernet import Fernet

from tests.fixtures.cli import HERALD, run_herald
from tests.fixtures.services import Servers
from tests.fixtures.waiting import wait_for
from tests.fixtures.workers import WorkerFactory
from worker.backups import store
from worker.backups.crypto import MAGIC
from worker.backups.retention import apply_retention
from worker.constants import TASK_BACKUP
from worker.coordination.locks import singleton
from worker.db.admin import create_database, drop_database
from worker.db.engine import get_engine, libpq_url
from worker.settings import get_settings

SEEDED = ("social_accounts", "scheduled_posts", "post_attempts")


@pytest.fixture
def backup_env(
    herald_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """This test's database and namespace, backups under tmp_path, verification off
    (tests that want it turn it on: it restores the whole database once more)."""
    env = {"BACKUP_DIR": str(tmp_path / "backups"), "HERALD_BACKUP_VERIFY": "false"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from worker import runtime

    runtime.reset()
    return {**herald_env, **env}


@pytest.fixture
def empty_database(servers: Servers) -> Iterator[str]:
    """A database with nothing in it (not even migrations): a restore target."""
    name = f"herald_empty_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = create_database(servers.admin_database_url, name)
    yield url
    drop_database(servers.admin_database_url, name)


def seed(database_url: str, posts: int = 30) -> None:
    """Accounts, posts and attempts, as an API and the workers would have written them."""
    with psycopg.connect(libpq_url(database_url)) as conn:
        for platform in ("instagram", "facebook", "youtube"):
            account = conn.execute(
                "INSERT INTO social_accounts (user_id, platform, external_id, access_token_enc)"
                " VALUES (gen_random_uuid(), %s, %s, 'gAAAA-encrypted') RETURNING id, user_id",
                (platform, f"acct-{platform}"),
            ).fetchone()
            assert account is not None
            for i in range(posts):
                post = conn.execute(
                    "INSERT INTO scheduled_posts (user_id, social_account_id, platform, content,"
                    " scheduled_at, status, attempts) VALUES (%s, %s, %s, %s, now(), "
                    "'published', 1) RETURNING id",
                    (account[1], account[0], platform, f"post {i} on {platform} ✓"),
                ).fetchone()
                assert post is not None
                conn.execute(
                    "INSERT INTO post_attempts (post_id, attempt, outcome, http_status)"
                    " VALUES (%s, 1, 'published', 200)",
                    (post[0],),
                )


def contents(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(libpq_url(database_url)) as conn:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall() for table in SEEDED
        }


def backup_now(env: dict[str, str]) -> dict[str, Any]:
    done = run_herald("backup", "now", env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    row: dict[str, Any] = json.loads(done.stdout)
    assert row["status"] == "succeeded"
    return row


def test_round_trip_restores_the_same_rows(backup_env: dict[str, str], database: str) -> None:
    """Given a seeded database, when it is backed up (and verified), wiped and restored
    over itself with --force, then every row is back and the catalog still says where
    the backup is."""
    seed(database)
    before = contents(database)
    row = backup_now({**backup_env, "HERALD_BACKUP_VERIFY": "true"})
    assert row["verify_ok"] is True, row["verify_result"]
    assert row["row_counts"]["public.scheduled_posts"] == 90
    assert row["row_counts"]["public.post_attempts"] == 90
    assert Path(row["file"]).stat().st_mode & 0o077 == 0  # nobody else reads a dump

    with psycopg.connect(libpq_url(database)) as conn:
        conn.execute("TRUNCATE social_accounts, scheduled_posts, post_attempts CASCADE")
    assert contents(database) == {table: [] for table in SEEDED}

    done = run_herald(
        "backup",
        "restore",
        str(row["id"]),
        "--to",
        database,
        "--force",
        env=backup_env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["mismatches"] == {}
    assert contents(database) == before
    listed = [
        json.loads(line)
        for line in run_herald("backup", "list", env=backup_env).stdout.splitlines()
    ]
    assert [(b["id"], b["status"], b["verify_ok"]) for b in listed] == [
        (row["id"], "succeeded", True)
    ]


def test_restore_into_an_empty_database_needs_no_force(
    backup_env: dict[str, str], database: str, empty_database: str
) -> None:
    seed(database, posts=5)
    row = backup_now(backup_env)
    done = run_herald("backup", "restore", str(row["id"]), "--to", empty_database, env=backup_env)
    assert done.returncode == 0, done.stderr
    assert contents(empty_database) == contents(database)


def test_restore_refuses_a_target_that_is_not_empty(
    backup_env: dict[str, str], database: str, empty_database: str
) -> None:
    """Given a target with rows, or with just one empty table, a restore without --force
    exits 1 saying so, shows no password, and changes nothing."""
    seed(database, posts=2)
    row = backup_now(backup_env)
    with_password = database.replace("postgres@", "postgres:s3cret-pw@")
    done = run_herald("backup", "restore", str(row["id"]), "--to", with_password, env=backup_env)
    assert done.returncode == 1
    assert "is not empty" in done.stderr and "--force" in done.stderr
    assert "s3cret-pw" not in done.stderr + done.stdout

    with psycopg.connect(libpq_url(empty_database)) as conn:
        conn.execute("CREATE TABLE keep_me (id int)")
    done = run_herald("backup", "restore", str(row["id"]), "--to", empty_database, env=backup_env)
    assert done.returncode == 1
    assert "is not empty (1 tables, 0 with rows)" in done.stderr
    with psycopg.connect(libpq_url(empty_database)) as conn:
        assert conn.execute("SELECT to_regclass('social_accounts')").fetchone() == (None,)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("backup", "restore", "999999", "--to", "{db}"), "no backup 999999"),
        (("backup", "verify", "999999"), "no backup 999999"),
        (("backup", "restore", "1", "--to", "mysql://x/y"), "is not PostgreSQL"),
        (("backup", "restore", "1", "--to", "postgresql://127.0.0.1"), "names no database"),
    ],
)
def test_bad_requests_exit_1_with_one_clear_line(
    backup_env: dict[str, str], database: str, args: tuple[str, ...], message: str
) -> None:
    done = run_herald(*(a.format(db=database) for a in args), env=backup_env)
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_a_flipped_byte_fails_verification_and_is_recorded(
    backup_env: dict[str, str], database: str, empty_database: str
) -> None:
    seed(database, posts=3)
    row = backup_now(backup_env)
    path = Path(row["file"])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    done = run_herald("backup", "verify", str(row["id"]), env=backup_env, timeout=120)
    assert done.returncode == 1
    assert "checksum mismatch: file changed since backup" in done.stderr
    recorded = store.get(row["id"])
    assert recorded is not None
    assert recorded.verify_ok is False and recorded.verified_at is not None
    assert recorded.verify_result is not None
    assert "checksum mismatch" in recorded.verify_result["error"]

    done = run_herald("backup", "restore", str(row["id"]), "--to", empty_database, env=backup_env)
    assert done.returncode == 1
    assert "checksum mismatch" in done.stderr


def test_verify_restores_into_a_scratch_database_and_compares_counts(
    backup_env: dict[str, str], database: str, servers: Servers
) -> None:
    """Given a backup whose recorded counts disagree with its file, verify fails naming
    the table, and leaves no scratch database behind."""
    seed(database, posts=4)
    row = backup_now(backup_env)
    ok = run_herald("backup", "verify", str(row["id"]), env=backup_env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] is True

    counts = {**row["row_counts"], "public.scheduled_posts": 999}
    with psycopg.connect(libpq_url(database)) as conn:
        conn.execute(
            "UPDATE backups SET row_counts = %s WHERE id = %s", (json.dumps(counts), row["id"])
        )
    bad = run_herald("backup", "verify", str(row["id"]), env=backup_env, timeout=120)
    assert bad.returncode == 1
    result = json.loads(bad.stdout)
    assert result["mismatches"] == {"public.scheduled_posts": {"expected": 999, "actual": 12}}
    with psycopg.connect(libpq_url(servers.admin_database_url)) as conn:
        left = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'herald_verify_%%'")
        assert left.fetchall() == []


def test_encrypted_backup_round_trip(
    backup_env: dict[str, str], database: str, empty_database: str
) -> None:
    """Given an encryption key, the file is ciphertext (no row content readable), it
    verifies and restores with the key, and without the key it is refused clearly."""
    seed(database, posts=3)
    env = {**backup_env, "HERALD_BACKUP_ENCRYPTION_KEY": Fernet.generate_key().decode()}
    row = backup_now({**env, "HERALD_BACKUP_VERIFY": "true"})
    assert row["verify_ok"] is True, row["verify_result"]
    data = Path(row["file"]).read_bytes()
    assert data.startswith(MAGIC) and row["file"].endswith(".dump.enc")
    assert b"acct-instagram" not in data and b"PGDMP" not in data

    done = run_herald("backup", "restore", str(row["id"]), "--to", empty_database, env=env)
    assert done.returncode == 0, done.stderr
    assert contents(empty_database) == contents(database)

    done = run_herald("backup", "verify", str(row["id"]), env=backup_env, timeout=120)
    assert done.returncode == 1
    assert "encrypted and HERALD_BACKUP_ENCRYPTION_KEY is not set" in done.stderr
    wrong = {**backup_env, "HERALD_BACKUP_ENCRYPTION_KEY": Fernet.generate_key().decode()}
    done = run_herald("backup", "verify", str(row["id"]), env=wrong, timeout=120)
    assert done.returncode == 1
    assert "wrong HERALD_BACKUP_ENCRYPTION_KEY" in done.stderr


def test_two_concurrent_backups_one_is_skipped(backup_env: dict[str, str], database: str) -> None:
    """Given a backup held up (a table locked, so its snapshot count waits), a second
    `herald backup now` is skipped with exit 1; the first then finishes."""
    with psycopg.connect(libpq_url(database)) as blocker:
        blocker.execute("LOCK TABLE scheduled_posts IN ACCESS EXCLUSIVE MODE")
        first = subprocess.Popen(
            [*HERALD, "backup", "now"],
            env=backup_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(
                lambda: any(b.status == "running" for b in store.list_backups()),
                timeout=60,
                what="the first backup to start",
            )
            second = run_herald("backup", "now", env=backup_env)
            assert second.returncode == 1
            assert "backup is already running elsewhere" in second.stderr
        finally:
            blocker.rollback()  # let the first one go
            _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert [b.status for b in store.list_backups()] == ["succeeded"]


def test_task_runs_in_a_real_worker(
    backup_env: dict[str, str],
    database: str,
    worker_process: WorkerFactory,
    control: Celery,
) -> None:
    """Given a maintenance worker, `maintenance.backup` dumps, verifies and records."""
    seed(database, posts=2)
    worker_process(("maintenance",), env={"HERALD_BACKUP_VERIFY": "true"})
    control.send_task(TASK_BACKUP)
    row = wait_for(
        lambda: next((b for b in store.list_backups() if b.verify_ok is not None), None),
        timeout=90,
        what="the task's backup to be verified",
    )
    assert row.status == "succeeded" and row.verify_ok is True
    assert Path(row.file).parent == Path(backup_env["BACKUP_DIR"]).resolve()


def test_task_skips_while_another_backup_holds_the_lock(
    backup_env: dict[str, str], database: str
) -> None:
    """Called in-process: skipped while the lock is held; once free, it runs and marks
    a row left `running` by a killed backup as failed (it held no lock any more)."""
    from tasks.backup import backup

    with singleton("backup"):
        assert backup() == {"skipped": "another backup is running"}
    assert store.list_backups() == []
    killed = store.start("killed-mid-dump.dump")  # a backup whose process died
    result = backup()
    assert result["status"] == "succeeded" and result["deleted"] == []
    stale = store.get(killed)
    assert stale is not None and (stale.status, stale.error) == ("failed", "interrupted")


def test_backup_ages_for_the_metrics(backup_env: dict[str, str], database: str) -> None:
    """None before any backup; then seconds since the last succeeded one, and since the
    last one that verified (a failed verification does not count)."""
    from worker.backups.job import run_backup
    from worker.backups.verify import verify_backup

    def ages(at: datetime) -> store.BackupAges:
        with get_engine().connect() as conn:
            return store.backup_ages(conn, at)

    assert ages(datetime.now(UTC)) == store.BackupAges(None, None, None)
    row = run_backup(get_settings())
    later = ages(datetime.now(UTC) + timedelta(seconds=100))
    assert 100 <= (later.succeeded or 0) < 160 and later.verified is None
    Path(row.file).write_bytes(b"changed")
    assert verify_backup(get_settings(), row.id).ok is False
    failed = ages(datetime.now(UTC))
    assert failed.verified is None and failed.last_verify_ok is False
    good = run_backup(get_settings())
    assert verify_backup(get_settings(), good.id).ok is True
    now = ages(datetime.now(UTC))
    assert 0 <= (now.verified or -1) < 60 and now.last_verify_ok is True


def test_pg_dump_older_than_the_server_is_refused(
    backup_env: dict[str, str], database: str, tmp_path: Path
) -> None:
    """Given HERALD_PG_BIN_DIR with a pg_dump of PostgreSQL 9, the backup fails saying
    so and the row records it (never left running)."""
    bin_dir = tmp_path / "oldpg"
    bin_dir.mkdir()
    for tool in ("pg_dump", "pg_restore"):
        script = bin_dir / tool
        script.write_text(f"#!/bin/sh\necho '{tool} (PostgreSQL) 9.6.24'\n")
        script.chmod(0o755)
    done = run_herald("backup", "now", env={**backup_env, "HERALD_PG_BIN_DIR": str(bin_dir)})
    assert done.returncode == 1
    assert "is PostgreSQL 9, older than the server" in done.stderr
    [row] = store.list_backups()
    assert row.status == "failed" and row.error is not None and "older than the server" in row.error
    assert not any(Path(backup_env["BACKUP_DIR"]).iterdir())  # no partial file left


def test_retention_deletes_files_and_marks_rows(
    backup_env: dict[str, str], database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given three days of backups, one running and one verified old one, keeping one
    daily deletes the middle day's file and row, keeps the verified and the running."""
    directory = Path(backup_env["BACKUP_DIR"])
    directory.mkdir(parents=True)
    now = datetime.now(UTC)
    made: dict[str, tuple[Path, int]] = {}
    insert = (
        "INSERT INTO backups (file, status, started_at, verify_ok) "
        "VALUES (%s, %s, %s, %s) RETURNING id"
    )
    with psycopg.connect(libpq_url(database)) as conn:
        for name, days_ago, status, verified in (
            ("old-verified", 3, "succeeded", True),
            ("middle", 2, "succeeded", None),
            ("newest", 1, "succeeded", None),
            ("running", 0, "running", None),
        ):
            path = directory / f"{name}.dump"
            path.write_bytes(b"dump")
            Path(f"{path}.sha256").write_text(f"{'0' * 64}  {path.name}\n")
            when = now - timedelta(days=days_ago)
            found = conn.execute(insert, (str(path), status, when, verified)).fetchone()
            assert found is not None
            made[name] = (path, int(found[0]))
    for name, value in {
        "HERALD_BACKUP_KEEP_DAILY": "1",
        "HERALD_BACKUP_KEEP_WEEKLY": "0",
        "HERALD_BACKUP_KEEP_MONTHLY": "0",
    }.items():
        monkeypatch.setenv(name, value)
    from worker import runtime

    runtime.reset()
    assert apply_retention(get_settings()) == [made["middle"][1]]
    assert apply_retention(get_settings()) == []  # idempotent
    assert not made["middle"][0].exists()
    assert not Path(f"{made['middle'][0]}.sha256").exists()
    assert all(made[name][0].exists() for name in ("old-verified", "newest", "running"))
    statuses = {b.id: b.status for b in store.list_backups(include_deleted=True)}
    assert statuses[made["middle"][1]] == "deleted"
    assert statuses[made["running"][1]] == "running"


def test_a_forced_restore_that_fails_changes_nothing(
    backup_env: dict[str, str], database: str
) -> None:
    """Given a target whose DDL fails half-way (an event trigger refuses CREATE INDEX,
    after the drops and table creations ran), the forced restore exits 1 and every row
    the target had is still there."""
    seed(database, posts=2)
    row = backup_now(backup_env)
    with psycopg.connect(libpq_url(database)) as conn:
        conn.execute("DELETE FROM post_attempts")
        conn.execute(
            "CREATE FUNCTION refuse_index() RETURNS event_trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'indexes refused here'; END $$"
        )
        conn.execute(
            "CREATE EVENT TRIGGER refuse_index ON ddl_command_end "
            "WHEN TAG IN ('CREATE INDEX') EXECUTE FUNCTION refuse_index()"
        )
    before = contents(database)
    done = run_herald(
        "backup", "restore", str(row["id"]), "--to", database, "--force", env=backup_env
    )
    assert done.returncode == 1
    assert "restore rolled back, target unchanged" in done.stderr
    assert "indexes refused here" in done.stderr
    assert contents(database) == before
    assert before["post_attempts"] == [] and len(before["scheduled_posts"]) == 6


def test_restore_from_a_file_when_the_catalog_is_gone(
    backup_env: dict[str, str], database: str, empty_database: str
) -> None:
    """Given only the backup file (the database holding the catalog was lost), the file
    restores, its checksum read from the `.sha256` beside it; a changed file is refused."""
    seed(database, posts=2)
    row = backup_now(backup_env)
    path = Path(row["file"])
    assert Path(f"{path}.sha256").read_text() == f"{row['sha256']}  {path.name}\n"
    with psycopg.connect(libpq_url(database)) as conn:
        conn.execute("DELETE FROM backups")
    done = run_herald("backup", "restore", str(path), "--to", empty_database, env=backup_env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["checksum_checked"] is True
    assert contents(empty_database) == contents(database)

    path.write_bytes(path.read_bytes() + b"x")
    again = run_herald(
        "backup", "restore", str(path), "--to", empty_database, "--force", env=backup_env
    )
    assert again.returncode == 1 and "checksum mismatch" in again.stderr
    missing = run_herald("backup", "restore", "/nonexistent.dump", "--to", database, env=backup_env)
    assert missing.returncode == 1 and "no backup file /nonexistent.dump" in missing.stderr
