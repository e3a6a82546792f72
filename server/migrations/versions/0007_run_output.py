"""A run's final output values, stored when it ends: ``/wait`` answers from any process, after any restart."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.add_column("loom_runs", sa.Column("output", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("loom_runs", "output")
