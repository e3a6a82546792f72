"""Node code every pattern shares: the agent loop, two-stage routing, tool dispatch, approval and permissions."""
