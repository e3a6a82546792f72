"""Customer support (seed 002): triage and escalation rules, the specialists and the graph's own nodes."""
