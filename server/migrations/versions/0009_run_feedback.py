"""Feedback on runs: a key, a score (a number or a bool) and a comment, deleted with the run."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.create_table(
        "loom_run_feedback",
        sa.Column("feedback_id", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("loom_runs.run_id", ondelete="CASCADE"), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("score", sa.JSON, nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_loom_run_feedback_run_id", "loom_run_feedback", ["run_id"])


def downgrade() -> None:
    op.drop_table("loom_run_feedback")
