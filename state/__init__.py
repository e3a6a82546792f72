"""Typed state schemas and reducers for Loom's graphs; nothing here does I/O."""
