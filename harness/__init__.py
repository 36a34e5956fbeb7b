"""pref-harness: evaluation side (CLI, lm-eval tasks, judged benchmarks)."""
__version__ = "0.1.0"
