"""`flashmm monaco balances|deposit|withdraw` as a user runs it: the CLI in a child process, the pair's
metadata and balances from the local Monaco, the transactions to a Sei EVM JSON-RPC over a real
socket that checks them as a Sei node would (tests/fake_evm.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.monaco.local.exchange import ExchangeConfig
from adapters.monaco.local.server import MonacoLocalThread
from app.live.monaco_run import monaco_node_config
from data.catalog import open_tape
from tests.fake_evm import FakeSeiEvm

ROOT = Path(__file__).resolve().parents[1]
USDC, SEI = "0x" + "c0" * 20, "0x" + "5e" * 20


def flashmm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", "monaco", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


@pytest.fixture
def setup(tmp_path):
    """The local Monaco (its pair naming the two token contracts) and a Sei EVM where the dev wallet
    holds 1,000 USDC (6 decimals) and 50 SEI (18 decimals)."""
    venue = MonacoLocalThread(open_tape(ROOT / "data/sample"), ExchangeConfig(token_contracts=(SEI, USDC)))
    venue.start()
    evm = FakeSeiEvm()
    evm.__enter__()
    wallet = venue.dev.address
    evm.add_token(USDC, 6, wallet, 1_000 * 10**6)
    evm.add_token(SEI, 18, wallet, 50 * 10**18)
    config = monaco_node_config(venue, tmp_path, {"instrument_id": "SEI/USDC.MONACO"},
                                monaco={"evm_rpc_url": evm.url, "vault_address": evm.vault})
    yield venue, evm, config, wallet.lower()
    evm.__exit__()
    venue.stop()


def test_deposit_approves_then_deposits_with_sei_nonces_and_gas_and_withdraw_pays_back(setup):
    venue, evm, config, wallet = setup
    out = flashmm("deposit", "--config", str(config), "--asset", "USDC", "--amount", "250.5")
    assert out.returncode == 0, out.stderr
    assert [line.split(":")[0] for line in out.stdout.splitlines()] == ["approve", "deposit"]
    assert all("confirmed in block" in line for line in out.stdout.splitlines())
    approve, deposit = evm.txs
    # Signed by the wallet, for this chain, nonces counted locally (the RPC counts only mined ones),
    # at the chain's gas price as eth_gasPrice gave it.
    assert (approve.sender, deposit.sender) == (wallet, wallet)
    assert (approve.nonce, deposit.nonce) == (0, 1) and {approve.chain_id, deposit.chain_id} == {1328}
    assert approve.gas_price == deposit.gas_price == evm.min_gas_price
    assert (approve.to, approve.call, approve.args) == (USDC, "approve(address,uint256)", (evm.vault, 250_500_000))
    assert (deposit.to, deposit.call, deposit.args) == (evm.vault, "deposit(address,uint256)", (USDC, 250_500_000))
    assert evm.vault_balances[(wallet, USDC)] == 250_500_000
    assert evm.tokens[USDC].balances[wallet] == 749_500_000
    out = flashmm("withdraw", "--config", str(config), "--asset", "USDC", "--amount", "0.5")
    assert out.returncode == 0, out.stderr
    assert evm.txs[-1].nonce == 2 and evm.txs[-1].call == "withdraw(address,uint256)"
    assert evm.vault_balances[(wallet, USDC)] == 250_000_000 and evm.tokens[USDC].balances[wallet] == 750_000_000


def test_balances_show_the_venue_and_the_chain(setup):
    _, _, config, _ = setup
    out = flashmm("balances", "--config", str(config))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert {k: Decimal(v["available"]) for k, v in report["venue"].items()} == {"SEI": 100_000, "USDC": 100_000}
    assert {k: Decimal(v) for k, v in report["sei_evm"].items()} == {"SEI": 50, "USDC": 1_000}


@pytest.mark.parametrize("args, message", [
    (["--amount", "5000"], "the wallet holds less than 5000"),
    (["--amount", "0.0000001"], "not a positive multiple of the token's smallest unit"),
    (["--amount", "1", "--rpc-url", "http://127.0.0.1:9"], "eth_chainId via http://127.0.0.1:9 failed"),
])
def test_a_deposit_that_cannot_be_made_says_why_and_sends_nothing(setup, args, message):
    _, evm, config, _ = setup
    out = flashmm("deposit", "--config", str(config), "--asset", "USDC", *args)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert evm.txs == []


def test_the_wrong_chain_is_refused_before_anything_is_signed(setup):
    _, evm, config, _ = setup
    evm.chain_id = 1329  # the RPC is mainnet's; the config says testnet
    out = flashmm("deposit", "--config", str(config), "--asset", "USDC", "--amount", "1")
    assert out.returncode == 2 and "serves chain 1329, the config says 1328" in out.stderr
    assert evm.txs == []
