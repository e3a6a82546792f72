"""Plan-and-execute (seeds 001, 003, 004): the plan model and its rules, the planner, validation, the step runner and DAG dispatch."""
