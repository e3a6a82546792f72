"""Loom's HTTP layer: routes, run manager and auth. No graph logic lives here."""
