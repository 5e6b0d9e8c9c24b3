"""Archival against real PostgreSQL: finished posts move to the archive, expired attempt
partitions become checked export files and are dropped, future partitions appear,
and a dry run changes nothing. (The killed-run test is in test_archival_interrupted.py.)
"""

from __future__ import annotations

import gzip
import hashlib
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import Connection, text

from tests.fixtures.archival import OLD, TRICKY, scalar, seed_account, seed_posts
from tests.fixtures.cli import run_herald
from tests.fixtures.waiting import wait_for
from worker import runtime
from worker.archival.archiver import export_dir, run_archive
from worker.archival.export import ExportError, paths, verify_export
from worker.archival.posts import COLUMNS
from worker.constants import TASK_ARCHIVE
from worker.coordination.locks import singleton
from worker.db.engine import get_engine
from worker.db.partitions import (
    add_months,
    ensure_partitions,
    list_partitions,
    month_start,
    partition_name,
)
from worker.settings import get_settings

RECENT = datetime.now(UTC) - timedelta(days=1)
DEFAULT_PARTITION = "post_attempts_default"


def rows_by_id(table: str) -> dict[uuid.UUID, dict[str, Any]]:
    with get_engine().connect() as conn:
        rows = conn.execute(text(f"SELECT {COLUMNS} FROM {table}")).mappings()
        return {row["id"]: dict(row) for row in rows}


def test_old_finished_posts_move_to_the_archive_and_nothing_else_does(
    archive_env: dict[str, str],
) -> None:
    # Given finished posts old and recent, and unfinished (or failed) old posts
    with get_engine().begin() as conn:
        account = seed_account(conn)
        for status in ("published", "cancelled", "dead"):
            seed_posts(conn, account, 40, status, OLD)
            seed_posts(conn, account, 5, status, RECENT)
        for status in ("scheduled", "queued", "publishing", "failed"):
            seed_posts(conn, account, 5, status, OLD)
    before = rows_by_id("scheduled_posts")

    # When archival runs with small batches
    settings = get_settings().model_copy(update={"archive_batch_size": 7})
    report = run_archive(settings)

    # Then exactly the old finished rows moved, unchanged, and the counts add up
    live, archived = rows_by_id("scheduled_posts"), rows_by_id("scheduled_posts_archive")
    expected = {
        i
        for i, r in before.items()
        if r["status"] in {"published", "cancelled", "dead"}
        and r["updated_at"] < datetime.now(UTC) - timedelta(days=90)
    }
    assert set(archived) == expected and len(expected) == 120
    assert set(live) == set(before) - expected
    assert all(archived[i] == before[i] for i in expected)  # every column, byte for byte
    assert archived[next(iter(expected))]["content"].endswith(TRICKY)
    posts = report.posts
    assert posts.before == posts.after + posts.archived == 120
    assert posts.after == 0 and posts.batches == 18  # ceil(120 / 7)
    stamps = scalar("SELECT count(DISTINCT archived_at) FROM scheduled_posts_archive")
    assert stamps == 1

    # And a second run finds nothing to do
    again = run_archive(settings)
    assert again.posts.archived == 0
    assert len(rows_by_id("scheduled_posts_archive")) == 120


def _seed_attempts(conn: Connection, month: date, count: int) -> None:
    conn.execute(
        text(
            "INSERT INTO post_attempts (attempted_at, post_id, attempt, outcome, http_status, "
            "latency_ms, error, task_id, worker) "
            "SELECT CAST(:start AS timestamptz) + interval '1 day' + g * interval '1 minute', "
            "gen_random_uuid(), 1 + g % 4, 'transient_error', 503, g, "
            "'attempt ' || g || ' ' || :tricky, 'task-' || g, 'w@host' "
            "FROM generate_series(1, :count) g"
        ),
        {"start": f"{month.isoformat()}T00:00:00+00:00", "count": count, "tricky": TRICKY},
    )


def _attempts_in(part: str) -> dict[str, dict[str, Any]]:
    with get_engine().connect() as conn:
        conn.execute(text("SET TimeZone = 'UTC'"))
        rows = conn.execute(text(f'SELECT row_to_json(t) FROM "{part}" t')).scalars()
        return {row["id"]: row for row in rows}


def _read_export(directory: Path, part: str) -> dict[str, dict[str, Any]]:
    data, _, _ = paths(directory, part)
    with gzip.open(data, "rt", encoding="utf-8", newline="\n") as lines:
        rows = [json.loads(line) for line in lines]
    return {row["id"]: row for row in rows}


def test_expired_attempt_partitions_are_exported_checked_and_dropped(
    archive_env: dict[str, str],
) -> None:
    # Given monthly partitions six months back (plus a DEFAULT one), each with rows
    current = month_start(datetime.now(UTC).date())
    months = [add_months(current, offset) for offset in range(-6, 1)]
    with get_engine().begin() as conn:
        ensure_partitions(conn, months_back=6, months_ahead=0)
        conn.execute(text(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF post_attempts DEFAULT"))
        for index, month in enumerate(months):
            _seed_attempts(conn, month, 50 + index)
        conn.execute(
            text(
                "INSERT INTO post_attempts (attempted_at, post_id, attempt, outcome) "
                "VALUES ('2001-01-01T00:00:00Z', gen_random_uuid(), 1, 'published')"
            )
        )
    expired = [partition_name(m) for m in months[:3]]  # retention 3 keeps months[3:]
    originals = {part: _attempts_in(part) for part in expired}

    # When archival runs
    report = run_archive(get_settings())

    # Then the three oldest months are files holding exactly their rows, and are gone
    directory = export_dir(get_settings())
    exported = report.attempts.exported
    assert [e.partition for e in exported] == expired
    with get_engine().connect() as conn:
        remaining = list_partitions(conn)
    for entry, part in zip(exported, expired, strict=True):
        assert part not in remaining
        data, sha_file, manifest = paths(directory, part)
        assert verify_export(manifest).rows == entry.rows == len(originals[part])
        digest = hashlib.sha256(data.read_bytes()).hexdigest()
        assert digest == entry.sha256
        assert sha_file.read_text() == f"{digest}  {data.name}\n"
        assert data.stat().st_mode & 0o777 == 0o600
        assert _read_export(directory, part) == originals[part]
    assert next(iter(_read_export(directory, expired[0]).values()))["error"].endswith(TRICKY)
    assert not list(directory.glob("*.tmp"))
    # And the kept months, the current one and the DEFAULT partition are untouched
    for index, month in enumerate(months[3:], start=3):
        assert scalar(f'SELECT count(*) FROM "{partition_name(month)}"') == 50 + index
    assert scalar(f"SELECT count(*) FROM {DEFAULT_PARTITION}") == 1
    # And a second run has nothing to export
    assert run_archive(get_settings()).attempts.exported == []


def test_a_tampered_export_fails_verification(archive_env: dict[str, str]) -> None:
    month = add_months(month_start(datetime.now(UTC).date()), -5)
    with get_engine().begin() as conn:
        ensure_partitions(conn, months_back=5, months_ahead=0)
        _seed_attempts(conn, month, 10)
    run_archive(get_settings())
    data, _, manifest = paths(export_dir(get_settings()), partition_name(month))
    content = bytearray(data.read_bytes())
    content[-1] ^= 0xFF  # gzip's length trailer: a corruption nothing else would notice
    data.write_bytes(bytes(content))
    with pytest.raises(ExportError, match="checksum"):
        verify_export(manifest)


def test_partitions_ahead_are_created(
    archive_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a deployment that wants 6 months ahead, and a missing month among them
    monkeypatch.setenv("HERALD_PARTITIONS_AHEAD", "6")
    runtime.reset()
    current = month_start(datetime.now(UTC).date())
    ahead = [partition_name(add_months(current, offset)) for offset in range(0, 7)]
    with get_engine().begin() as conn:
        conn.execute(text(f'DROP TABLE "{ahead[2]}"'))
    # When archival runs
    report = run_archive(get_settings())
    # Then every month up to 6 ahead exists, and only the missing ones were created
    with get_engine().connect() as conn:
        assert set(ahead) <= set(list_partitions(conn))
    assert report.attempts.created == [ahead[2], *ahead[4:]]
    assert run_archive(get_settings()).attempts.created == []


def _snapshot() -> dict[str, Any]:
    with get_engine().connect() as conn:
        return {
            "partitions": list_partitions(conn),
            "posts": conn.execute(text("SELECT count(*) FROM scheduled_posts")).scalar_one(),
            "archive": conn.execute(
                text("SELECT count(*) FROM scheduled_posts_archive")
            ).scalar_one(),
            "attempts": conn.execute(text("SELECT count(*) FROM post_attempts")).scalar_one(),
        }


def test_dry_run_reports_the_plan_and_changes_nothing(archive_env: dict[str, str]) -> None:
    # Given old finished posts, an expired partition and a missing month ahead
    current = month_start(datetime.now(UTC).date())
    old_month, gap = add_months(current, -4), partition_name(add_months(current, 3))
    with get_engine().begin() as conn:
        account = seed_account(conn)
        seed_posts(conn, account, 30, "published", OLD)
        seed_posts(conn, account, 4, "published", RECENT)
        ensure_partitions(conn, months_back=4, months_ahead=0)
        _seed_attempts(conn, old_month, 12)
        conn.execute(text(f'DROP TABLE "{gap}"'))
    before = _snapshot()

    # When `herald archive --dry-run` runs
    result = run_herald("archive", "--dry-run", env=archive_env)

    # Then it says what it would do, and did none of it
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dry_run"] is True
    assert report["posts"]["to_archive"] == 30
    assert report["attempts"]["to_export"] == [{"partition": partition_name(old_month), "rows": 12}]
    assert report["attempts"]["to_create"] == [gap]
    assert _snapshot() == before
    assert not export_dir(get_settings()).exists()

    # And the real run does what the dry run said
    done = json.loads(run_herald("archive", env=archive_env).stdout)
    assert done["posts"]["archived"] == 30
    assert [e["partition"] for e in done["attempts"]["exported"]] == [partition_name(old_month)]
    assert done["attempts"]["created"] == [gap]


def test_archive_refuses_while_another_run_holds_the_lock(archive_env: dict[str, str]) -> None:
    with singleton("archive"):
        result = run_herald("archive", env=archive_env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "herald: archive is already running elsewhere"
    assert result.stdout == ""


def test_bad_option_is_a_usage_error(archive_env: dict[str, str]) -> None:
    result = run_herald("archive", "--dry-rnu", env=archive_env)
    assert result.returncode == 2
    assert "No such option '--dry-rnu'" in result.stderr


def test_the_beat_task_archives_on_a_real_worker(
    archive_env: dict[str, str], celery_worker: Any, control: Celery
) -> None:
    # Given old finished posts and a worker (Celery's in-process one: nothing to kill)
    with get_engine().begin() as conn:
        seed_posts(conn, seed_account(conn), 25, "cancelled", OLD)
    # When beat's task is sent by name
    control.send_task(TASK_ARCHIVE)
    # Then the worker archives them
    wait_for(
        lambda: scalar("SELECT count(*) FROM scheduled_posts_archive") == 25,
        timeout=30,
        what="the worker to archive 25 posts",
    )
    assert scalar("SELECT count(*) FROM scheduled_posts") == 0


def test_a_partition_is_not_dropped_while_post_attempts_stays_locked(
    archive_env: dict[str, str],
) -> None:
    # Given an expired partition, and a long transaction reading post_attempts
    month = add_months(month_start(datetime.now(UTC).date()), -5)
    with get_engine().begin() as conn:
        ensure_partitions(conn, months_back=5, months_ahead=0)
        _seed_attempts(conn, month, 10)
    with get_engine().connect() as reader, reader.begin():
        reader.execute(text("SELECT count(*) FROM post_attempts"))
        # When `herald archive` runs meanwhile
        result = run_herald("archive", env=archive_env)
    # Then it exports, gives up on the lock after a few seconds, and drops nothing
    assert result.returncode == 1
    assert "was not dropped (the next run retries)" in result.stderr.splitlines()[-1]
    with get_engine().connect() as conn:
        assert partition_name(month) in list_partitions(conn)
    assert scalar(f'SELECT count(*) FROM "{partition_name(month)}"') == 10
    # And the next run, unhindered, finishes the job
    done = json.loads(run_herald("archive", env=archive_env).stdout)
    assert partition_name(month) in [e["partition"] for e in done["attempts"]["exported"]]
