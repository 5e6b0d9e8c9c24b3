"""backup tasks (being built)."""
