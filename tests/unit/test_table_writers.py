"""One place writes each table (DESIGN.md), and typed results keep their JSON keys.

The writer check reads the source: any INSERT / UPDATE / DELETE of a table, in SQL text
or through SQLAlchemy (`update(Model)`, `Model(...)` added to a session), outside the
table's repository module fails it. Not flagged, by decision: archival's move of finished
posts into scheduled_posts_archive (`worker/archival/posts.py`, its SQL names the table
through `ScheduledPost.__tablename__`) and partition DDL (`worker/db/partitions.py`) are
archival's own table operations, not a second writer of live rows.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from worker.backups.verify import VerifyResult
from worker.deadletter.replay import Replayed

ROOT = Path(__file__).resolve().parents[2]

#: table -> (its ORM class, the one module allowed to write it)
WRITERS = {
    "scheduled_posts": ("ScheduledPost", "worker/db/posts.py"),
    "post_attempts": ("PostAttempt", "worker/db/posts.py"),
    "social_accounts": ("SocialAccount", "worker/db/accounts.py"),
    "dead_letters": ("DeadLetter", "worker/deadletter/store.py"),
    "backups": ("Backup", "worker/backups/store.py"),
    "audit_log": ("AuditEntry", "worker/db/audit.py"),
}


def _sources() -> list[Path]:
    found = [
        path
        for folder in ("worker", "tasks", "schedules")
        for path in (ROOT / folder).rglob("*.py")
        # The sandbox is a stand-in platform with no tables of Herald's; models.py
        # declares the tables (`class Backup(Base)`), it writes none.
        if "platforms/sandbox" not in path.as_posix() and path.name != "models.py"
    ]
    assert found, "no source found: the test would pass for nothing"
    return found


def _writes(table: str, model: str) -> re.Pattern[str]:
    sql = rf"(?i:INSERT\s+INTO\s+{table}\b|UPDATE\s+{table}\b|DELETE\s+FROM\s+{table}\b)"
    return re.compile(rf"{sql}|\b(update|insert|delete)\(\s*{model}\b|\b{model}\(")


@pytest.mark.parametrize("table", sorted(WRITERS))
def test_each_table_is_written_by_its_repository_only(table: str) -> None:
    model, owner = WRITERS[table]
    pattern = _writes(table, model)
    writers = {
        path.relative_to(ROOT).as_posix()
        for path in _sources()
        if pattern.search(path.read_text(encoding="utf-8"))
    }
    assert writers == {owner}


def test_the_writer_check_sees_a_second_writer() -> None:
    pattern = _writes("scheduled_posts", "ScheduledPost")
    assert pattern.search('text("UPDATE scheduled_posts SET status = :s")')
    assert pattern.search("session.execute(update(ScheduledPost).values(status='x'))")
    assert not pattern.search("select(ScheduledPost.status)")


def test_a_verify_result_has_the_keys_it_always_had() -> None:
    restored = VerifyResult(ok=True, tables=4, seconds=1.5)
    assert list(restored.as_json()) == ["ok", "mismatches", "tables", "seconds"]
    differs = VerifyResult(ok=False, tables=4, error="row counts differ", seconds=1.0)
    assert list(differs.as_json()) == ["ok", "mismatches", "tables", "error", "seconds"]
    refused = VerifyResult(ok=False, error="checksum mismatch", seconds=0.1)
    assert set(refused.as_json()) == {"ok", "error", "mismatches", "seconds"}


def test_a_replay_names_a_post_only_for_a_publish() -> None:
    plain = Replayed(7, "replayed", "tokens.refresh", "t1", "t2", "tokens")
    assert "post_id" not in plain.as_json()
    publish = Replayed(8, "replayed", "posts.publish", "t3", "t4", "posts", post_id="p")
    assert publish.as_json()["post_id"] == "p"
