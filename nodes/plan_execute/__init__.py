"""Plan-and-execute (seeds 001, 003, 004): plan model and rules, planner, validator, step runner, DAG dispatch."""
