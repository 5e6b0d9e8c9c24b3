"""Initial schema: accounts, posts, partitioned attempts, dead letters, backups.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from worker.db.partitions import ensure_partitions

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)
NOW = sa.text("now()")
UUID_DEFAULT = sa.text("gen_random_uuid()")
PLATFORM_CHECK = "platform IN ('instagram', 'facebook', 'youtube')"


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", TZ, server_default=NOW, nullable=False),
        sa.Column("updated_at", TZ, server_default=NOW, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "social_accounts",
        sa.Column("id", pg.UUID(as_uuid=True), server_default=UUID_DEFAULT, nullable=False),
        sa.Column("user_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("platform", sa.Text(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text()),
        sa.Column("access_token_enc", sa.Text(), nullable=False),
        sa.Column("refresh_token_enc", sa.Text()),
        sa.Column("token_expires_at", TZ),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("needs_reauth", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_social_accounts"),
        sa.UniqueConstraint(
            "platform", "external_id", name="uq_social_accounts_platform_external_id"
        ),
        sa.CheckConstraint(PLATFORM_CHECK, name="ck_social_accounts_platform"),
    )
    op.create_index(
        "ix_social_accounts_user_id_platform", "social_accounts", ["user_id", "platform"]
    )
    op.create_index(
        "ix_social_accounts_is_active_token_expires_at",
        "social_accounts",
        ["is_active", "token_expires_at"],
    )

    op.create_table(
        "scheduled_posts",
        sa.Column("id", pg.UUID(as_uuid=True), server_default=UUID_DEFAULT, nullable=False),
        sa.Column("user_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("social_account_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("platform", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("media", pg.JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("scheduled_at", TZ, nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'scheduled'"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("external_post_id", sa.Text()),
        sa.Column("last_error", sa.Text()),
        sa.Column("lease_expires_at", TZ),
        sa.Column("request_id", sa.Text()),
        sa.Column("published_at", TZ),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_scheduled_posts"),
        sa.ForeignKeyConstraint(
            ["social_account_id"],
            ["social_accounts.id"],
            name="fk_scheduled_posts_social_account_id_social_accounts",
        ),
        sa.CheckConstraint(
            "status IN ('scheduled', 'queued', 'publishing', 'published', 'failed', "
            "'cancelled', 'dead')",
            name="ck_scheduled_posts_status",
        ),
        sa.CheckConstraint(PLATFORM_CHECK, name="ck_scheduled_posts_platform"),
        sa.CheckConstraint("attempts >= 0", name="ck_scheduled_posts_attempts"),
    )
    op.create_index(
        "ix_scheduled_posts_user_id_status_scheduled_at",
        "scheduled_posts",
        ["user_id", "status", "scheduled_at"],
    )
    op.create_index(
        "ix_scheduled_posts_social_account_id_status",
        "scheduled_posts",
        ["social_account_id", "status"],
    )
    op.create_index(
        "ix_scheduled_posts_due",
        "scheduled_posts",
        ["scheduled_at"],
        postgresql_where=sa.text("status = 'scheduled'"),
    )
    op.create_index(
        "ix_scheduled_posts_leased",
        "scheduled_posts",
        ["lease_expires_at"],
        postgresql_where=sa.text("status IN ('queued', 'publishing')"),
    )

    op.create_table(
        "post_attempts",
        sa.Column("id", pg.UUID(as_uuid=True), server_default=UUID_DEFAULT, nullable=False),
        sa.Column("attempted_at", TZ, server_default=NOW, nullable=False),
        sa.Column("post_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("http_status", sa.Integer()),
        sa.Column("latency_ms", sa.Integer()),
        sa.Column("error", sa.Text()),
        sa.Column("task_id", sa.Text()),
        sa.Column("worker", sa.Text()),
        sa.PrimaryKeyConstraint("id", "attempted_at", name="pk_post_attempts"),
        postgresql_partition_by="RANGE (attempted_at)",
    )
    op.create_index("ix_post_attempts_post_id", "post_attempts", ["post_id"])
    ensure_partitions(op.get_bind())

    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("task_id", sa.Text()),
        sa.Column("task_name", sa.Text()),
        sa.Column("args", pg.JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("kwargs", pg.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("headers", pg.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("queue", sa.Text()),
        sa.Column("raw_body", sa.Text()),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("exception_type", sa.Text()),
        sa.Column("exception_message", sa.Text()),
        sa.Column("traceback", sa.Text()),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("first_failed_at", TZ, server_default=NOW, nullable=False),
        sa.Column("last_failed_at", TZ, server_default=NOW, nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'open'"), nullable=False),
        sa.Column("replayed_task_id", sa.Text()),
        sa.Column("replayed_at", TZ),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
        sa.CheckConstraint(
            "status IN ('open', 'replayed', 'purged')", name="ck_dead_letters_status"
        ),
    )
    op.create_index(
        "ix_dead_letters_status_task_name_last_failed_at",
        "dead_letters",
        ["status", "task_name", "last_failed_at"],
    )
    op.create_index("ix_dead_letters_task_id", "dead_letters", ["task_id"])

    op.create_table(
        "backups",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("file", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger()),
        sa.Column("sha256", sa.Text()),
        sa.Column("row_counts", pg.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("started_at", TZ, server_default=NOW, nullable=False),
        sa.Column("finished_at", TZ),
        sa.Column("status", sa.Text(), server_default=sa.text("'running'"), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("verified_at", TZ),
        sa.Column("verify_ok", sa.Boolean()),
        sa.Column("verify_result", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_backups"),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed', 'deleted')", name="ck_backups_status"
        ),
    )
    op.create_index("ix_backups_status_finished_at", "backups", ["status", "finished_at"])


def downgrade() -> None:
    op.drop_table("backups")
    op.drop_table("dead_letters")
    op.drop_table("post_attempts")  # drops its partitions with it
    op.drop_table("scheduled_posts")
    op.drop_table("social_accounts")
