"""Fixtures for every test: real servers (given by URL, else embedded) for the tests
outside tests/unit, clean state each test.

`celery.contrib.pytest` is listed explicitly: pytest-celery 1.3 (installed for its
Docker-based smoke module) replaces Celery's in-process `celery_worker` with a
Docker-based one; registered here, after the entry point, Celery's own wins again.
It comes before tests.fixtures.workers, whose `celery_app` (Herald's real app)
overrides Celery's blank test app.
"""

pytest_plugins = [
    "celery.contrib.pytest",
    "tests.fixtures.services",
    "tests.fixtures.workers",
    "tests.fixtures.sandbox",
    "tests.fixtures.posting",
    "tests.fixtures.archival",
]
