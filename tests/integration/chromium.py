"""Headless Chromium driven over the Chrome DevTools Protocol (no chromedriver needed).

Basic auth travels as an `Authorization` header set through CDP (`Network.setExtraHTTPHeaders`):
headless Chromium ignores credentials in URLs for the page's own XHRs.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.fixtures.waiting import wait_for

CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str:
    """Chromium's path; skip with a reason locally, fail under CI (never a skipped CI run)."""
    for candidate in CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    reason = f"no Chromium found (looked for {', '.join(CANDIDATES)})"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so this is a failure")
    pytest.skip(reason)


class Page:
    """One browser tab: send CDP commands, wait for their answers (events are skipped)."""

    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        self._ids = itertools.count(1)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self._socket.recv(timeout=30))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise AssertionError(f"CDP {method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def basic_auth(self, user: str, password: str) -> None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.send("Network.enable")
        self.send("Network.setExtraHTTPHeaders", headers={"Authorization": f"Basic {token}"})

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))


@contextmanager
def chromium_page(profile: Path, width: int = 1280, height: int = 800) -> Iterator[Page]:
    """A headless Chromium with one page, closed afterwards."""
    profile.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            find_chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        wait_for(port_file.exists, timeout=30, what="Chromium's DevTools port")
        port = wait_for(lambda: port_file.read_text().split("\n")[0], timeout=5, what="port")
        target = wait_for(lambda: _page_target(int(port)), timeout=10, what="a page target")
        with connect(target, max_size=None, open_timeout=10) as socket:
            page = Page(socket)
            page.send("Emulation.setDeviceMetricsOverride",
                      width=width, height=height, deviceScaleFactor=1, mobile=False)  # fmt: skip
            yield page
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _page_target(port: int) -> str | None:
    targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=2, trust_env=False).json()
    for target in targets:
        if target.get("type") == "page":
            url: str = target["webSocketDebuggerUrl"]
            return url
    return None
