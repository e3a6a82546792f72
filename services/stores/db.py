"""One way to open the sync SQLAlchemy engines the stores use (tools run in LangGraph's thread pool)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url


def make_engine(url: str) -> Engine:
    """Plain ``postgresql://`` URLs mean psycopg 3 (Loom's driver); SQLite files get their folder."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
    return create_engine(parsed)
