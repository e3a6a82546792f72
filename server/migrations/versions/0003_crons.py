"""Scheduled runs (the Agent Server's crons)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "loom_crons",
        sa.Column("cron_id", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False, index=True),
        sa.Column("assistant_id", sa.String(64), nullable=False),
        sa.Column("graph_id", sa.String(128), nullable=False),
        sa.Column("thread_id", sa.String(64), sa.ForeignKey("loom_threads.thread_id", ondelete="CASCADE"), index=True),
        sa.Column("schedule", sa.String(128), nullable=False),
        sa.Column("timezone", sa.String(64)),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("on_run_completed", sa.String(16)),
        sa.Column("end_time", sa.DateTime(timezone=True)),
        sa.Column("next_run_date", sa.DateTime(timezone=True), index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("loom_crons")
