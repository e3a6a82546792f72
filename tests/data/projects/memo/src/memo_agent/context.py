"""What a caller may set per run, read by the nodes as ``runtime.context``."""

from dataclasses import dataclass


@dataclass(kw_only=True)
class Context:
    model: str = "openai:gpt-4o-mini"
    """A ``provider:model`` string for ``init_chat_model``."""
    persona: str = "a friendly assistant"
    """How the assistant describes itself in its system prompt."""
