"""Archival's pure parts: which partitions expire, partition names, the archive's
columns, and the export file check."""

from __future__ import annotations

import gzip
import hashlib
from datetime import date
from pathlib import Path

import pytest

from worker.archival.attempts import expired_partitions
from worker.archival.export import ExportError, check_file
from worker.archival.posts import COLUMNS
from worker.db.models import ArchivedPost, ScheduledPost
from worker.db.partitions import MonthlyPartition, partition_month, partition_name


def months(*starts: date) -> list[MonthlyPartition]:
    return [MonthlyPartition(partition_name(start), start) for start in starts]


def test_retention_three_in_december_keeps_september_to_december() -> None:
    parts = months(*(date(2026, m, 1) for m in range(6, 13)))
    expired = expired_partitions(parts, date(2026, 12, 15), retention_months=3)
    assert [p.name for p in expired] == [
        "post_attempts_y2026m06",
        "post_attempts_y2026m07",
        "post_attempts_y2026m08",
    ]


def test_retention_crosses_the_year_and_counts_whole_months() -> None:
    parts = months(date(2025, 10, 1), date(2025, 11, 1), date(2025, 12, 1), date(2026, 1, 1))
    # Retention 2 in January keeps the two whole months before it (November, December)
    # and January itself; October goes.
    expired = expired_partitions(parts, date(2026, 1, 31), retention_months=2)
    assert [p.month for p in expired] == [date(2025, 10, 1)]


def test_the_current_and_future_months_never_expire() -> None:
    parts = months(date(2026, 11, 1), date(2026, 12, 1), date(2027, 1, 1))
    assert expired_partitions(parts, date(2026, 12, 1), retention_months=1) == []
    # Even with no retention at all (settings forbid it), December itself stays.
    assert expired_partitions(parts, date(2026, 12, 1), retention_months=0) == months(
        date(2026, 11, 1)
    )


@pytest.mark.parametrize(
    ("name", "month"),
    [
        ("post_attempts_y2026m08", date(2026, 8, 1)),
        ("post_attempts_default", None),
        ("post_attempts_y2026m13", None),
        ("post_attempts_y2026m08_old", None),
        ("other_y2026m08", None),
    ],
)
def test_only_names_of_monthly_partitions_parse(name: str, month: date | None) -> None:
    assert partition_month(name) == month


def test_the_archive_has_every_column_of_the_live_table_plus_archived_at() -> None:
    live = {c.name: (str(c.type), c.nullable) for c in ScheduledPost.__table__.columns}
    archive = {c.name: (str(c.type), c.nullable) for c in ArchivedPost.__table__.columns}
    assert archive.pop("archived_at") == ("DATETIME", False)
    assert archive == live
    assert COLUMNS.split(", ") == list(live)


def _export(path: Path, lines: list[bytes]) -> str:
    with gzip.open(path, "wb") as out:
        out.write(b"".join(lines))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_check_file_accepts_a_matching_export(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl.gz"
    digest = _export(path, [b'{"a": 1}\n', b'{"a": "x\\ny"}\n'])
    check_file(path, sha256=digest, rows=2)


def test_check_file_refuses_a_wrong_checksum_or_row_count(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl.gz"
    digest = _export(path, [b'{"a": 1}\n'])
    with pytest.raises(ExportError, match="checksum"):
        check_file(path, sha256="0" * 64, rows=1)
    with pytest.raises(ExportError, match="holds 1 rows, expected 2"):
        check_file(path, sha256=digest, rows=2)
