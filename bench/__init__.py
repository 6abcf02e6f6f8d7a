"""Benchmarks: one command each, not tests. See docs/performance.md."""
