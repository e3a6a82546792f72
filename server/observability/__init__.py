"""What Loom records about runs: OpenTelemetry spans, LangChain callbacks, Prometheus metrics, logs."""
