"""scheduled_posts.first_attempt_at: when the first publish attempt took the post.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

After an unknown outcome the publish path looks on the platform back to the first
attempt. Without a column, a post whose first attempt died before recording anything
and which was then moved to a later time had no lower bound but its new time. The
archive keeps the same columns as the live table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("scheduled_posts", "scheduled_posts_archive")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("first_attempt_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    for table in TABLES:
        op.drop_column(table, "first_attempt_at")
