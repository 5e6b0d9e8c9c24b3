"""tokens tasks (being built)."""
