"""memo-agent: a chat agent with long-term memory, laid out as LangChain's memory-agent template is."""
