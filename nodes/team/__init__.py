"""Teams of agents (seeds 001, 003): the supervisor, the pipeline, the worker subgraphs, code reflection."""
