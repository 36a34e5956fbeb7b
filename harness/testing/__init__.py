"""Test helpers that tests and benchmarks share (no test-only dependencies)."""
