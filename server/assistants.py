"""Moved to ``server.data.assistants``; these names stay until ``server.engine`` (admission, preparation, crons)
and the cron routes import them from there (then this module goes)."""

from server.data.assistants import AssistantRow as AssistantRow
from server.data.assistants import canonical_id as canonical_id
from server.data.assistants import merged_run as merged_run
from server.data.assistants import run_metadata as run_metadata
