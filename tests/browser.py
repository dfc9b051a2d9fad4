"""A real browser for the tests: headless Chromium, found on PATH (``.ci/run`` installs it) and, for pages that
must be driven (upload a file, move a slider), steered over the Chrome DevTools Protocol on a websocket.
A test in CI fails, never skips, when no browser is there."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest


def chromium() -> str:
    found = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if found is None and os.environ.get("CI") == "true":  # .ci/run installs one: never a silent skip in CI
        pytest.fail("no chromium, chromium-browser or google-chrome on PATH, and CI=true (.ci/run installs chromium)")
    if found is None:
        pytest.skip("no chromium, chromium-browser or google-chrome on PATH")
    return found


class Browser:
    """One headless Chromium with one page, driven by CDP commands (``send``) and page-side JavaScript
    (``evaluate``). Every wait is bounded."""

    def __init__(self, profile: Path, timeout: float = 30.0):
        from websockets.sync.client import connect

        self.process = subprocess.Popen(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        url = None
        while url is None and time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line and self.process.poll() is not None:
                raise RuntimeError("chromium exited before it listened for DevTools")
            found = re.search(r"DevTools listening on (ws://\S+)", line)
            url = found.group(1) if found else None
        if url is None:
            self.close()
            raise RuntimeError("chromium did not say where DevTools listens")
        self.socket = connect(url, max_size=None, open_timeout=timeout)
        self.ids = itertools.count(1)
        self.session: str | None = None
        self.console: list[str] = []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "DOM", "Log"):
            self.send(f"{domain}.enable")

    def send(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        ident = next(self.ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if self.session is not None:
            message["sessionId"] = self.session
        self.socket.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = json.loads(self.socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("method") in ("Runtime.consoleAPICalled", "Log.entryAdded"):
                entry = reply["params"].get("entry") or reply["params"]
                self.console.append(str(entry.get("text") or entry.get("args")))
            if reply.get("id") == ident:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
        raise TimeoutError(f"{method}: no reply in {timeout} s")

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        raise TimeoutError(f"{expression[:100]} stayed false for {timeout} s; console: {self.console[-5:]}")

    def open(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def set_files(self, selector: str, *paths: Path) -> None:
        root = self.send("DOM.getDocument")["root"]["nodeId"]
        node = self.send("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        self.send("DOM.setFileInputFiles", nodeId=node, files=[str(p) for p in paths])

    def close(self) -> None:
        try:
            if getattr(self, "socket", None) is not None:
                self.socket.close()
        finally:
            self.process.kill()
            self.process.wait(timeout=30)
