"""Scale mode started the way an operator does it: an API replica and two workers at one moment on an empty
PostgreSQL database, with no ``loom db upgrade`` first. Every process sets up Loom's tables, the
checkpointer's and the store's under one advisory lock, so none of them fails on a table another is creating.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from langgraph_sdk import get_client

from loom.processes import PROJECT_ROOT, scratch_postgres_database
from tests.fixtures.databases import require_postgres, require_redis
from tests.fixtures.servers import new_server

pytestmark = [pytest.mark.live, pytest.mark.postgres, pytest.mark.redis]


@pytest.mark.parametrize("attempt", range(3))
async def test_an_api_and_two_workers_started_together_on_an_empty_database_all_serve(
    attempt: int, tmp_path: Path
) -> None:
    with scratch_postgres_database(require_postgres(), "loom_start") as database:
        env = {"LOOM_DATABASE_URL": database, "LOOM_CHECKPOINT_URL": database, "LOOM_REDIS_URL": require_redis()}
        processes = [new_server(tmp_path, role=role, **env) for role in ("api", "worker", "worker")]
        try:
            for process in processes:
                process.launch_now()
            for process in processes:
                process.wait_serving(timeout_s=120)
            client = get_client(url=processes[0].url)
            thread = (await client.threads.create())["thread_id"]
            answer = await client.runs.wait(thread, "whoami", input={"request": "x"})
            assert answer == {"request": "x", "user_id": "demo", "permissions": ["read"]}
        finally:
            for process in processes:
                process.stop()
        for process in processes:
            assert "Traceback" not in process.log.read_text(), process.log.read_text()[-4000:]


def test_db_upgrade_sets_up_loom_s_tables_the_checkpointer_s_and_the_store_s(tmp_path: Path) -> None:
    with scratch_postgres_database(require_postgres(), "loom_upgrade") as database:
        env = new_server(tmp_path, LOOM_DATABASE_URL=database, LOOM_CHECKPOINT_URL=database).env
        upgrade = [sys.executable, "-m", "loom", "db", "upgrade"]
        done = subprocess.run(upgrade, cwd=PROJECT_ROOT, env=env, capture_output=True, timeout=120)
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
        with psycopg.connect(database) as conn:
            tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    expected = {"alembic_version", "loom_runs", "checkpoints", "checkpoint_migrations", "store", "store_migrations"}
    assert expected <= tables
