"""What nodes and the server both use and that is not a node: stores, the sandbox, the knowledge base, paths."""
