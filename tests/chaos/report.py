"""`python -m tests.chaos.report`: the latest chaos counts as a Markdown table
(the rows of docs/RELIABILITY.md's "Latest figures")."""

from __future__ import annotations

import json
import sys
from typing import Any

from tests.chaos.harness import RESULTS_DIR


def faults_text(record: dict[str, Any]) -> str:
    faults = {k: v for k, v in record["faults"].items() if v}
    restarts = record["notes"].get("supervisor_restarts")
    if restarts:
        faults["supervisor restarts"] = restarts
    return ", ".join(f"{k} {v}" for k, v in faults.items()).replace("_", " ")


def rows(size: str) -> list[str]:
    lines = []
    for path in sorted(RESULTS_DIR.glob("*.json")):
        record = json.loads(path.read_text())
        if record["size"] != size:
            continue
        failed = " (FAILED)" if "failed" in record["notes"] else ""
        cells = [
            record["scenario"] + failed,
            record["posts"],
            faults_text(record),
            record["lost"],
            record["duplicates"],
            record["dead"],
            record["drain_seconds"],
        ]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return lines


if __name__ == "__main__":
    print("\n".join(rows(sys.argv[1] if len(sys.argv) > 1 else "short")))
