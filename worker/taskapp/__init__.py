"""The Celery app's wiring: its configuration, routing, signal receivers, and the Redis fast
path for batches of task messages.
"""
