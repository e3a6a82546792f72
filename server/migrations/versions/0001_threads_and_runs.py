"""Threads and runs, as the server created them before migrations."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "loom_threads",
        sa.Column("thread_id", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False, index=True),
        sa.Column("graph_id", sa.String(128)),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "loom_runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("thread_id", sa.String(64), sa.ForeignKey("loom_threads.thread_id", ondelete="CASCADE"), index=True),
        sa.Column("owner", sa.String(128), nullable=False, index=True),
        sa.Column("assistant_id", sa.String(64), nullable=False),
        sa.Column("graph_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("multitask_strategy", sa.String(16), nullable=False),
        sa.Column("kwargs", sa.JSON, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("error", sa.JSON),
        sa.Column("idempotency_key", sa.String(256), unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("loom_runs")
    op.drop_table("loom_threads")
