"""Fixtures for every test: real servers (given by URL, else embedded), clean state each test."""

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.workers",
    "tests.fixtures.sandbox",
    "tests.fixtures.posting",
]
