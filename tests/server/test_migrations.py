"""Loom's server tables come from Alembic migrations, the same on SQLite and PostgreSQL, old databases included."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from loom.processes import scratch_postgres_database
from server import migrations
from server.db import RunRow, open_database


def _columns(url: str) -> set[str]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as connection:
        names = {column["name"] for column in inspect(connection).get_columns("loom_runs")}
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    engine.dispose()
    return names | {f"version:{version}"}


def _pre_migrations_database(url: str) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:  # the tables as create_all made them before Alembic
        migrations.upgrade(connection, migrations.BASELINE)
        connection.execute(text("DROP TABLE alembic_version"))
    engine.dispose()


async def _upgrade_a_pre_migrations_database(url: str) -> None:
    await asyncio.to_thread(_pre_migrations_database, url)  # sync set-up, off the event loop
    server_engine, _ = await open_database(url)
    await server_engine.dispose()
    columns = await asyncio.to_thread(_columns, url)
    assert {column.name for column in RunRow.__table__.columns} <= columns
    assert f"version:{ScriptDirectory(str(migrations.HERE)).get_current_head()}" in columns


async def test_sqlite_database_is_migrated_to_head(tmp_path: Path) -> None:
    await _upgrade_a_pre_migrations_database(f"sqlite:///{tmp_path / 'loom.sqlite'}")


@pytest.fixture
def scratch_database(postgres_url: str) -> Iterator[str]:
    with scratch_postgres_database(postgres_url, "loom_migrate") as url:
        yield url


@pytest.mark.postgres
async def test_postgres_database_is_migrated_to_head(scratch_database: str) -> None:
    await _upgrade_a_pre_migrations_database(scratch_database)
