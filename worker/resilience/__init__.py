"""Resilience around every platform call: global rate limits, shared circuit breakers,
and the retry policy.
"""
