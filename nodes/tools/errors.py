"""How tool failures reach the model, the node's retry policy, or a plan's replanner."""

from __future__ import annotations

from nodes.models import is_transient


class PermanentToolError(Exception):
    """Bad input or a business rule said no: a plan executor should replan instead of retrying."""


def tool_error_message(error: Exception) -> str:
    """``ToolNode``'s error handler: the model reads what went wrong and can correct its call.

    A transient failure (timeout, rate limit, provider 5xx) is raised instead, so the tool node's
    ``TRANSIENT_RETRY`` policy retries it with backoff rather than the model guessing around it.
    """
    if is_transient(error):
        raise error
    return f"Error: {error!r}\n Please fix your mistakes."
