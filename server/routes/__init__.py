"""One router per resource, in langgraph-api's URL shapes."""
