"""Feedback on runs (``server.db.FeedbackRow``): a user's thumbs-up or a judge's score, stored with the run.

The caller's run is found by ``server.deps`` (another user's run is a 404); this module only writes the score.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db import FeedbackRow, insert_row, new_id, now, transaction


async def add(
    sessions: async_sessionmaker[AsyncSession], run_id: str, owner: str, key: str, score: bool | float,
    comment: str | None,
) -> FeedbackRow:  # fmt: skip
    """Stores one score on run ``run_id`` (the caller has checked it is ``owner``'s) and answers it."""
    row = FeedbackRow(feedback_id=new_id(), run_id=run_id, owner=owner, key=key, score=score, comment=comment,
                      created_at=now())  # fmt: skip
    await transaction(sessions, lambda session: insert_row(session, row))
    return row
