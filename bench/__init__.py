"""Throughput and correctness benchmarks against peer PGD implementations (see RESULTS.md)."""
