"""Secrets at rest: token encryption with key rotation."""
