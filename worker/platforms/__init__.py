"""Platforms: one client per platform behind one protocol, their error taxonomy, OAuth,
and the sandbox platform server.
"""
