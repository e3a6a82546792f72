"""An index on (owner, status): admission counts a user's unfinished runs (``LOOM_USER_MAX_UNFINISHED_RUNS``)
without reading the user's whole run history."""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.create_index("ix_loom_runs_owner_status", "loom_runs", ["owner", "status"])


def downgrade() -> None:
    op.drop_index("ix_loom_runs_owner_status", table_name="loom_runs")
