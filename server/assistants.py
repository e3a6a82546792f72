"""Moved to ``server.data.assistants``; these names stay until the run routes, the cron routes and
``server.engine.crons`` import them from there (then this module goes)."""

from server.data.assistants import AssistantRow as AssistantRow
from server.data.assistants import canonical_id as canonical_id
from server.data.assistants import merged_run as merged_run
from server.data.assistants import run_metadata as run_metadata
