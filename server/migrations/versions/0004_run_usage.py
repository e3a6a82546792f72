"""What each run spent: tokens, model calls and USD by node and model (``server/engine/usage.py``)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("loom_runs") as batch:
        batch.add_column(sa.Column("usage", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("loom_runs") as batch:
        batch.drop_column("usage")
