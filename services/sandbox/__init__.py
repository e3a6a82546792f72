"""The sandboxed Python runner (a fenced child process) and the bootstrap that fences the child in."""
