"""End to end in a real browser: `flashmm app` serves the demo runs, headless chromium reads the Runs
table, opens a run's detail page by the name the table shows, and the plotly charts must be drawn
(SVG paths with data), not merely present."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from urllib.parse import quote

from browser import chromium_path, open_page
from conftest import ARTIFACTS, ROOT

SCREENSHOT = ARTIFACTS / "app-run-detail.png"
EXPECTED_CHARTS = {"PnL and its decomposition (USDC, marked at mid)", "Inventory (SEI)",
                   "Price: market mid, our quotes and fills", "Markout, qty-weighted (+ = good for us)",
                   "Signal vs realised mid move over the next 5 s"}  # the bundled model's horizon
# Ready when every chart has drawn a line or markers and the config (the last section) is on the page.
CHARTS_DRAWN = """(() => {
  const failure = document.querySelector('[data-testid="stException"]');
  if (failure) return {exception: failure.innerText};
  const plots = [...document.querySelectorAll('.js-plotly-plot')].map(p => ({
    title: (p.querySelector('.gtitle') || {}).textContent,
    lines: [...p.querySelectorAll('.scatterlayer path.js-line')]
      .filter(e => (e.getAttribute('d') || '').length > 20).length,
    markers: p.querySelectorAll('.scatterlayer path.point').length,
  }));
  const code = document.querySelector('[data-testid="stCode"]');
  const ready = plots.length >= 5 && plots.every(p => p.lines + p.markers > 0)
    && code && code.innerText.includes('half_spread_bps');
  return ready ? {plots} : null;
})()"""


# The Runs table's rows as text: Streamlit's data grid draws on a canvas and keeps an accessible
# <table> of the same cells, header row first.
RUNS_TABLE = """(() => {
  const table = document.querySelector('[data-testid="stDataFrame"] table');
  if (!table || table.rows.length < 3) return null;
  return [...table.rows].map(r => [...r.cells].map(c => c.innerText.trim()));
})()"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"flashmm app exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
                if response.read() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"flashmm app did not answer on port {port} within {timeout} s")


def test_run_detail_renders_its_charts_in_headless_chromium(demo_runs, tmp_path):
    assert chromium_path() is not None, (
        "chromium is not installed: `sudo apt-get install chromium` (bash scripts/test.sh installs it)")
    port = free_port()
    log = (tmp_path / "app.log").open("w")
    app = subprocess.Popen([sys.executable, "-m", "app.cli", "app", "--runs", str(demo_runs.root), "--port", str(port)],
                           cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(port, app)
        with open_page(f"http://127.0.0.1:{port}/", tmp_path / "chromium-profile") as page:
            header, *rows = page.wait_for(RUNS_TABLE) or [[]]
            assert rows, "the Runs table did not render"
            column = {name: i for i, name in enumerate(header)}
            signal_rows = [r for r in rows if r[column["signal"]] == "true"]  # the one run with the signal on
            assert len(signal_rows) == 1, rows
            name, link = signal_rows[0][column["run"]], signal_rows[0][column["open"]]
            assert link == f"run?run={quote(name)}" and "/" not in name and not name.startswith("/")
            page.call("Page.navigate", url=f"http://127.0.0.1:{port}/run?run={quote(name)}")
            drawn = page.wait_for(CHARTS_DRAWN)
            chosen = page.evaluate("document.querySelector('[data-testid=\"stSelectbox\"] input').value")
            address = page.evaluate("location.pathname + location.search")
            shot = page.screenshot(SCREENSHOT)
            seen = page.evaluate("document.body.innerText.slice(0, 2000)") if not drawn else ""
    finally:
        app.terminate()
        app.wait(timeout=30)
        log.close()
    print(f"\nscreenshot of the run detail page: {shot}")
    assert drawn and "exception" not in drawn, f"charts not drawn: {drawn}\npage text:\n{seen}\napp log:\n" + \
        (tmp_path / "app.log").read_text()[-3000:]
    assert {p["title"] for p in drawn["plots"]} == EXPECTED_CHARTS  # the signal chart: the signal run's page
    assert name == demo_runs.signal.name and chosen == name  # the run picked is the one the link named
    assert address == f"/run?run={quote(name)}"  # and the address stays a link a person can share
    price = next(p for p in drawn["plots"] if p["title"].startswith("Price"))
    assert price["lines"] >= 3 and price["markers"] > 0  # mid, our bid and ask, and our fills
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
