"""Runs claimed from the database: lease, cancel request and start checkpoint columns."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("loom_runs") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(128)))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("cancel_requested", sa.String(16)))
        batch.add_column(sa.Column("start_checkpoint_id", sa.String(64)))
        batch.create_index("ix_loom_runs_lease_expires_at", ["lease_expires_at"])
        batch.create_index("ix_loom_runs_claim", ["status", "created_at"])


def downgrade() -> None:
    with op.batch_alter_table("loom_runs") as batch:
        batch.drop_index("ix_loom_runs_claim")
        batch.drop_index("ix_loom_runs_lease_expires_at")
        for column in ("start_checkpoint_id", "cancel_requested", "lease_expires_at", "lease_owner"):
            batch.drop_column(column)
