"""Benchmarks: serving latency and throughput, checkpoint growth, plan DAG speed-up (see README)."""
