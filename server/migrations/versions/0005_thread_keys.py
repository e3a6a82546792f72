"""Thread keys scoped by owner (``loom.threads``): ``<id>~<owner digest>`` needs up to 81 characters.

Threads made before this keep their bare id as their key, so their checkpoints stay where they are and
their owner reaches them as before. SQLite does not enforce a ``VARCHAR`` length, so only PostgreSQL
changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
COLUMNS = (("loom_threads", "thread_id"), ("loom_runs", "thread_id"), ("loom_crons", "thread_id"))


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, column in COLUMNS:
            op.alter_column(table, column, type_=sa.String(128), existing_type=sa.String(64))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, column in COLUMNS:
            op.alter_column(table, column, type_=sa.String(64), existing_type=sa.String(128))
