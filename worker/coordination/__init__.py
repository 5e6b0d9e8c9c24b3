"""Coordination in Redis: the per-process client and the locks every host shares."""
