"""Loom's server tables come from Alembic migrations, the same on SQLite and PostgreSQL, old databases included."""

from __future__ import annotations

import asyncio

from sqlalchemy import create_engine, inspect, text

from server import migrations
from server.data.assistants import AssistantRow
from server.db import RunRow, open_database


def _columns(url: str, table: str = "loom_runs") -> set[str]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as connection:
        names = {column["name"] for column in inspect(connection).get_columns(table)}
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
    assert f"version:{await asyncio.to_thread(migrations.head)}" in columns
    assistants = await asyncio.to_thread(_columns, url, "loom_assistants")
    assert {column.name for column in AssistantRow.__table__.columns} <= assistants


async def test_database_is_migrated_to_head(database_url: str) -> None:
    await _upgrade_a_pre_migrations_database(database_url)
