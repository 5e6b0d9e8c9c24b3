"""scheduled_posts_archive: finished posts moved out of the hot table by archival.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Same columns as scheduled_posts plus `archived_at`. No foreign key to social_accounts
(an archived post must not stop an account from being deleted) and no CHECKs (the
archive keeps whatever the hot table held). Also a partial index on scheduled_posts
that lets each archival batch find its rows without scanning the live schedule.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)
ARCHIVE = "scheduled_posts_archive"
COLUMNS = (
    "id, user_id, social_account_id, platform, content, media, scheduled_at, status, "
    "attempts, external_post_id, last_error, lease_expires_at, request_id, published_at, "
    "created_at, updated_at"
)
ARCHIVABLE = sa.text("status IN ('published', 'cancelled', 'dead')")


def upgrade() -> None:
    op.create_table(
        ARCHIVE,
        sa.Column("id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("user_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("social_account_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("platform", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("media", pg.JSONB(), nullable=False),
        sa.Column("scheduled_at", TZ, nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("external_post_id", sa.Text()),
        sa.Column("last_error", sa.Text()),
        sa.Column("lease_expires_at", TZ),
        sa.Column("request_id", sa.Text()),
        sa.Column("published_at", TZ),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("archived_at", TZ, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_scheduled_posts_archive"),
    )
    op.create_index(
        "ix_scheduled_posts_archive_user_id_scheduled_at", ARCHIVE, ["user_id", "scheduled_at"]
    )
    op.create_index(
        "ix_scheduled_posts_archive_social_account_id_scheduled_at",
        ARCHIVE,
        ["social_account_id", "scheduled_at"],
    )
    op.create_index(
        "ix_scheduled_posts_finished",
        "scheduled_posts",
        ["updated_at"],
        postgresql_where=ARCHIVABLE,
    )


def downgrade() -> None:
    # Put archived posts back rather than drop them with the table: a downgrade must not
    # lose data (it fails, and changes nothing, if an archived post's account is gone).
    op.execute(
        f"INSERT INTO scheduled_posts ({COLUMNS}) SELECT {COLUMNS} FROM {ARCHIVE} "  # noqa: S608
        "ON CONFLICT (id) DO NOTHING"
    )
    op.drop_index("ix_scheduled_posts_finished", table_name="scheduled_posts")
    op.drop_table(ARCHIVE)
