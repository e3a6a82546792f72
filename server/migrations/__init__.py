"""Alembic migrations of the server's tables (threads, runs, crons, assistants); applied at start and by
``loom db upgrade``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

HERE = Path(__file__).resolve().parent
BASELINE = "0001"
"""The tables as ``create_all`` made them before migrations existed: such databases are stamped, not recreated."""


def config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The newest revision; raises if two migrations claim the same parent (a merge left two heads)."""
    current = ScriptDirectory.from_config(config()).get_current_head()
    assert current is not None, "no migrations"
    return current


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Bring the database to ``revision``; one at a time on PostgreSQL (processes may start together)."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(1280266061)")
    tables = set(inspect(connection).get_table_names())
    cfg = config(connection)
    if "loom_runs" in tables and "alembic_version" not in tables:
        command.stamp(cfg, BASELINE)
    command.upgrade(cfg, revision)
