"""The data layer: each resource's rows, queries and transactions, beside the rules that go with them.

Routes (``server.routes``) parse a request, call in here and answer; they run no SQL. The run engine may read
and write through these modules too, so nothing here imports the HTTP edge (routes, ``server.deps``, the app).
"""
