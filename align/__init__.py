"""pref-harness: training side (data, log-probs, losses, trainer)."""
