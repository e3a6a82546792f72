"""The run engine: admission, the queue's transactions, workers that claim and execute runs, leases and
reaping, the event bus, streams, crons, thread TTL, usage and budgets. It never imports the HTTP edge
(``server.routes``, ``server.deps``, ``server.app``)."""
