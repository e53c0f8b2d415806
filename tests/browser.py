"""Just enough of the Chrome DevTools protocol to load a page in Debian's headless chromium, wait
until a JavaScript condition holds, evaluate it, and take a screenshot.

A Streamlit page renders after its websocket delivers the script's output, so "the page loaded"
means nothing; the test needs to wait for the charts themselves, which only a live connection
to the browser can do. Chromium's own --dump-dom/--virtual-time-budget returns too early.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from websockets.sync.client import connect

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check"]


def chromium_path() -> str | None:
    return shutil.which("chromium")


class Page:
    def __init__(self, ws) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    def call(self, method: str, **params) -> dict:
        request_id = next(self._ids)
        self._ws.send(json.dumps({"id": request_id, "method": method, "params": params}))
        while True:  # events arrive interleaved with replies; only our reply matters
            message = json.loads(self._ws.recv(timeout=60))
            if message.get("id") == request_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 90.0):
        """Evaluate `expression` until it is truthy; returns its last value either way."""
        deadline = time.monotonic() + timeout
        value = self.evaluate(expression)
        while not value and time.monotonic() < deadline:
            time.sleep(0.5)
            value = self.evaluate(expression)
        return value

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


@contextmanager
def open_page(url: str, profile_dir: Path, width: int = 1400, height: int = 3000):
    """A fresh chromium (its own --user-data-dir) showing `url`, stopped on exit."""
    profile_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", "--remote-debugging-port=0",
         f"--window-size={width},{height}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        port_file = profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            target = next(t for t in json.load(response) if t["type"] == "page")
        with connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=10) as ws:
            page = Page(ws)
            page.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                      mobile=False)
            page.call("Page.navigate", url=url)
            yield page
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
