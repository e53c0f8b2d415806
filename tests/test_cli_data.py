"""The data subcommands through the real `flashmm` entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from data.catalog import open_tape

ROOT = Path(__file__).resolve().parent.parent


def flashmm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, cwd=ROOT)


def test_synth_writes_a_synthetic_catalog_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "tape"
    done = flashmm("data", "synth", "--hours", "0.05", "--seed", "3", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "SYNTHETIC" in done.stdout
    tape = open_tape(out)
    assert tape.meta["synthetic"] is True and tape.meta["seed"] == 3
    assert 0.04 * 3600e9 < tape.end_ns - tape.start_ns < 0.06 * 3600e9
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    again = flashmm("data", "synth", "--hours", "0.05", "--seed", "4", "--out", str(out))
    assert again.returncode == 2 and "already holds data" in again.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_import_tardis_through_the_cli(tmp_path):
    book = tmp_path / "book.csv"
    book.write_text(
        "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n"
        "sei,SEIUSDC,1000,1000,true,bid,0.4000,100.0\n"
        "sei,SEIUSDC,1000,1000,true,ask,0.4002,50.5\n"
        "sei,SEIUSDC,2000,2000,false,bid,0.4001,10\n"
    )
    trades = tmp_path / "trades.csv"
    trades.write_text("exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
                      "sei,SEIUSDC,1500,1500,a1,buy,0.4002,5\n")
    out = tmp_path / "cat"
    args = ["data", "import-tardis", "--book", str(book), "--trades", str(trades), "--instrument", "SEI/USDC.SEI",
            "--price-precision", "4", "--size-precision", "1", "--out", str(out)]
    done = flashmm(*args)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["deltas"] == 4 and summary["batches"] == 2 and summary["trades"] == 1  # CLEAR + 2 ADD, 1 ADD
    bad = tmp_path / "bad.csv"
    bad.write_text(book.read_text() + "sei,SEIUSDC,3000,3000,false,bid,0.40015,1\n")
    bad_args = [str(bad) if a == str(book) else str(tmp_path / "cat2") if a == str(out) else a for a in args]
    failed = flashmm(*bad_args)
    assert failed.returncode == 2
    assert "bad.csv line 5, field 'price'" in failed.stderr and "Traceback" not in failed.stderr
    assert not (tmp_path / "cat2").exists()
