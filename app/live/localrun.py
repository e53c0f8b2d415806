"""A live node trading a tape replayed by an in-process localnet: parity, bench and the tests.

The node runs as a child process (`flashmm live`), exactly as an operator would start it, against
a `LocalnetThread` in this process, so what this module reads back comes from the chain itself:
every fill of our account with its block height, and which tape block each height replayed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import tomli_w

from adapters.sei.events import decode_events, wasm_events
from adapters.sei.localnet.chain import Chain, ChainConfig, account_signer, derive_key
from adapters.sei.localnet.replay import TapeBlock, TapeReplay
from adapters.sei.localnet.server import LocalnetThread, write_key_file
from app.live.config import without_none
from data.catalog import Tape

_SESSION = re.compile(r"session written to (\S+):")


class IndexedReplay:
    """A `TapeReplay` that remembers which tape block each chain height replayed."""

    def __init__(self, replay: TapeReplay) -> None:
        self.replay = replay
        self.height_to_index: dict[int, int] = {}
        self.index_ts: list[int] = []

    def advance(self) -> TapeBlock | None:
        block = self.replay.advance()
        if block is not None:
            self.index_ts.append(block.ts_ns)
        return block

    def taker_msgs(self, block: TapeBlock, clob, height: int) -> list[dict]:
        self.height_to_index[height] = block.index
        return self.replay.taker_msgs(block, clob, height)

    def maker_msgs(self, block: TapeBlock, clob, height: int) -> list[dict]:
        return self.replay.maker_msgs(block, clob, height)


@dataclass(frozen=True)
class ChainFill:
    height: int
    client_order_id: str
    side: str
    price: Decimal
    quantity: Decimal
    liquidity: str
    trade_id: str


@dataclass
class LocalRun:
    session_dir: Path
    fills: list[ChainFill]
    placed: list[tuple[int, str]]  # (height, client_order_id) of every order of ours the chain accepted
    open_orders: list[dict]
    balances: dict[str, tuple[int, int]]  # denom -> (free, locked), after the node stopped
    genesis: dict[str, int]  # denom -> deposited at genesis
    height_to_index: dict[int, int]
    index_ts: list[int]
    node_output: str


def start_localnet(tape: Tape, start_ns: int | None, end_ns: int | None, *, seed: int = 0, maker_fee: str = "0",
                   taker_fee: str = "0.0005", block_ms: float = 400.0) -> tuple[LocalnetThread, IndexedReplay]:
    config = ChainConfig(seed=seed, maker_fee_rate=Decimal(maker_fee), taker_fee_rate=Decimal(taker_fee),
                         genesis_time_ns=time.time_ns())
    replay = IndexedReplay(TapeReplay(
        tape, maker=account_signer(seed, "maker").address, taker=account_signer(seed, "taker").address,
        start_ns=start_ns, end_ns=end_ns,
    ))
    net = LocalnetThread(config, replay=replay, block_interval_ms=block_ms)
    net.start()
    return net, replay


def node_config(net: LocalnetThread, workdir: Path, strategy: dict, signal: dict | None = None,
                mode: str = "live", paper: dict | None = None) -> Path:
    """Write a node TOML for `net` (and the dev key file it names, mode 600) into `workdir`; its
    sessions go to a fresh short directory under /tmp (`node.state_dir` in the TOML)."""
    # Absolute: the node runs from another directory, and the TOML's relative paths are from its own.
    workdir = Path(workdir).resolve()
    key_file = workdir / "localnet.key"
    write_key_file(key_file, derive_key(net.config.seed, "dev"))
    # Sessions hold the control socket, and a Unix socket path may not exceed 107 bytes.
    state_dir = tempfile.mkdtemp(prefix="flashmm-", dir="/tmp")
    raw = {
        "node": {"mode": mode, "state_dir": state_dir, "log_level": "INFO", "status_interval_secs": 0.5, "ops_port": 0},
        "sei": {"rpc_url": net.url, "contract": net.contract, "chain_id": net.chain_id, "key_file": str(key_file)},
        "strategy": strategy,
    }
    if signal:
        raw["signal"] = signal
    if paper:
        raw["paper"] = paper
    path = workdir / "node.toml"
    path.write_text(tomli_w.dumps(raw))
    return path


def run_node(config: Path, duration_s: float, *, timeout_s: float | None = None, during=None) -> tuple[Path, str]:
    """Run `flashmm live` for `duration_s`; `during(proc)` runs while it trades (fault injection)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name in ("FLASHMM_SEI_MNEMONIC", "FLASHMM_MONACO_KEY"):
        env.pop(name, None)  # the node must use the key file it was given
    with tempfile.TemporaryFile(mode="w+") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "live", "--config", str(config), "--duration", str(duration_s)],
            stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2], env=env,
        )
        try:
            if during is not None:
                during(proc)
            proc.wait(timeout=timeout_s or duration_s + 60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        text = out.read()
    match = _SESSION.search(text)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"flashmm live exited with {proc.returncode}:\n{text[-4000:]}")
    return Path(match.group(1)), text


def read_back(net: LocalnetThread, replay: IndexedReplay, session_dir: Path, node_output: str) -> LocalRun:
    """Everything the chain says about the dev account, for comparing with what the node says."""
    def scan(chain: Chain):
        owner = chain.dev.address
        fills, placed = [], []
        for height in range(chain.earliest_height, chain.height + 1):
            for tx in chain.block_results(height).get("txs_results") or []:
                for e in wasm_events(decode_events(tx.get("events") or [])):
                    if e.get("owner") != owner:
                        continue
                    if e.type == "wasm-filled":
                        fills.append(ChainFill(height, e.get("client_order_id"), e.get("side"), Decimal(e.get("price")),
                                               Decimal(e.get("quantity")), e.get("liquidity"), e.get("trade_id")))
                    elif e.type == "wasm-placed":
                        placed.append((height, e.get("client_order_id")))
        opened = chain.clob.query({"open_orders": {"owner": owner, "limit": 500}}, chain.height)["orders"]
        rows = chain.clob.query({"balances": {"owner": owner}}, chain.height)["balances"]
        balances = {r["denom"]: (int(r["free"]), int(r["locked"])) for r in rows}
        return fills, placed, opened, balances

    fills, placed, opened, balances = net.call(scan)
    genesis = dict(net.config.dev_deposit)
    return LocalRun(session_dir, fills, placed, opened, balances, genesis, dict(replay.height_to_index),
                    list(replay.index_ts), node_output)


def live_latency(config_path: str | Path, seconds: float = 30.0) -> dict:
    """Tick-to-tx latency of the live node on the localnet: block event received -> signed tx sent.

    The config's tape (from its window start) is the market and its strategy trades it live."""
    import json

    from backtests.config import load_config
    from backtests.runner import window
    from data.catalog import open_tape

    config = load_config(config_path)
    tape = open_tape(config.run.catalog)
    start_ns, _ = window(config, tape)
    net, replay = start_localnet(tape, start_ns, start_ns + int((seconds + 30) * 1e9), seed=config.run.seed)
    with tempfile.TemporaryDirectory(prefix="flashmm-bench-") as tmp:
        try:
            signal = without_none(config.to_dict()["signal"])
            session_dir, _ = run_node(node_config(net, Path(tmp), dict(config.strategy), signal=signal), seconds)
            metrics = json.loads((session_dir / "metrics.json").read_text())
            shutil.rmtree(session_dir.parent)  # the node's state directory: a benchmark keeps only its figures
        finally:
            net.stop()
    execution = metrics.get("execution") or {}
    keys = ("tick_to_tx_ms_p50", "tick_to_tx_ms_p99", "tick_to_tx_samples", "txs", "txs_failed", "fill_count")
    return {k: execution.get(k, metrics.get(k)) for k in keys} | {"seconds": seconds}
