"""Migrations: empty -> head -> base -> head, the schema matches the models, partitions work."""

from __future__ import annotations

from datetime import UTC, date, datetime

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from tests.fixtures.services import Servers
from worker.db import migrate
from worker.db.admin import create_database, drop_database
from worker.db.engine import sqlalchemy_url
from worker.db.migrate import head
from worker.db.models import Base
from worker.db.partitions import add_months, ensure_partitions, list_partitions, partition_name

HEAD = head()

TABLES = {
    "social_accounts",
    "scheduled_posts",
    "post_attempts",
    "dead_letters",
    "backups",
    "audit_log",
    "scheduled_posts_archive",
}


def test_upgrade_downgrade_upgrade_from_an_empty_database(servers: Servers) -> None:
    url = create_database(servers.admin_database_url, "herald_migrate_roundtrip")
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.begin() as conn:
            migrate.upgrade(connection=conn)
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.begin() as conn:
            migrate.downgrade(connection=conn)
        assert not TABLES & set(inspect(engine).get_table_names())
        with engine.begin() as conn:
            assert not list_partitions(conn)
            migrate.upgrade(connection=conn)
            assert migrate.current(conn) == HEAD
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()
        drop_database(servers.admin_database_url, "herald_migrate_roundtrip")


def test_migrated_schema_matches_the_models(database: str) -> None:
    engine = create_engine(sqlalchemy_url(database))
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_server_default": False})
        differences = [
            diff
            for diff in compare_metadata(context, Base.metadata)
            # The monthly partitions (and their indexes) are not declared by the models.
            if not _is_partition(diff)
        ]
    engine.dispose()
    assert differences == []


def _is_partition(diff: tuple[object, ...]) -> bool:
    kind, item = diff[0], diff[1]
    table = getattr(item, "table", item)
    return kind in {"remove_table", "remove_index"} and str(getattr(table, "name", "")).startswith(
        "post_attempts_y"
    )


def test_partitions_are_created_ahead_and_rows_land_in_their_month(database: str) -> None:
    engine = create_engine(sqlalchemy_url(database))
    today = datetime.now(UTC).date()
    with engine.begin() as conn:
        names = list_partitions(conn)
        assert partition_name(add_months(today.replace(day=1), 3)) in names
        assert ensure_partitions(conn) == []  # idempotent
        created = ensure_partitions(conn, months_ahead=5)
        assert created == [
            partition_name(add_months(today.replace(day=1), 4)),
            partition_name(add_months(today.replace(day=1), 5)),
        ]
        conn.execute(
            text(
                "INSERT INTO post_attempts (post_id, attempt, outcome, attempted_at) "
                "VALUES (gen_random_uuid(), 1, 'published', :at)"
            ),
            {"at": datetime(today.year, today.month, 1, 12, tzinfo=UTC)},
        )
        where = conn.execute(text("SELECT tableoid::regclass::text FROM post_attempts")).scalar()
    engine.dispose()
    assert where == partition_name(today.replace(day=1))


def test_add_months_crosses_years() -> None:
    assert add_months(date(2026, 11, 1), 3) == date(2027, 2, 1)
    assert add_months(date(2026, 1, 1), -1) == date(2025, 12, 1)
