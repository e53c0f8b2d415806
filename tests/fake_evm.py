"""A Sei EVM JSON-RPC endpoint over a real socket, as far as `flashmm monaco deposit|withdraw` uses
it: ERC-20 tokens, a vault that takes approved deposits and pays out withdrawals, and Sei's rules.

It checks what a Sei node checks of a raw transaction: the signature (the sender is recovered from
it), the chain id (EIP-155 `v`), the nonce, and a gas price at least the chain's minimum. Like Sei's
RPC it counts only mined transactions for "pending" (sei-chain evmrpc treats "pending" as "latest"),
and it mines once per `block_ms`, so a client that asks the node for its next nonce while a
transaction is waiting gets the wrong one. Every transaction accepted is kept in `txs`.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

import rlp
from aiohttp import web
from eth_abi import decode, encode
from eth_account import Account
from web3 import Web3


def _selector(signature: str) -> bytes:
    return Web3.keccak(text=signature)[:4]


SELECTORS = {_selector(s): s for s in ("balanceOf(address)", "allowance(address,address)", "approve(address,uint256)",
                                       "decimals()", "deposit(address,uint256)", "withdraw(address,uint256)")}


@dataclass
class Token:
    decimals: int
    balances: dict[str, int] = field(default_factory=dict)
    allowances: dict[tuple[str, str], int] = field(default_factory=dict)


@dataclass
class Tx:
    sender: str
    nonce: int
    gas_price: int
    chain_id: int
    to: str
    call: str
    args: tuple
    hash: str
    status: int = -1  # -1 until mined


class FakeSeiEvm:
    def __init__(self, *, chain_id: int = 1328, min_gas_price: int = 1_100_000_000, block_ms: float = 300) -> None:
        self.chain_id, self.min_gas_price, self.block_ms = chain_id, min_gas_price, block_ms
        self.tokens: dict[str, Token] = {}
        self.vault = "0x" + "5a" * 20
        self.vault_balances: dict[tuple[str, str], int] = {}
        self.nonces: dict[str, int] = {}
        self.mempool: list[Tx] = []
        self.txs: list[Tx] = []
        self.height = 1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.port = 0

    def add_token(self, address: str, decimals: int, holder: str, amount: int) -> None:
        self.tokens[address.lower()] = Token(decimals, {holder.lower(): amount})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeSeiEvm:
        threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True).start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        app = web.Application()
        app.router.add_post("/", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        miner = asyncio.create_task(self._mine())
        self._ready.set()
        await self._stop.wait()
        miner.cancel()
        await runner.cleanup()

    async def _mine(self) -> None:
        while True:
            await asyncio.sleep(self.block_ms / 1000)
            pending, self.mempool = self.mempool, []
            self.height += 1
            for tx in pending:
                tx.status = 1 if self._execute(tx) else 0
                self.nonces[tx.sender] = tx.nonce + 1

    def _execute(self, tx: Tx) -> bool:
        if tx.to in self.tokens and tx.call == "approve(address,uint256)":
            self.tokens[tx.to].allowances[(tx.sender, tx.args[0].lower())] = tx.args[1]
            return True
        if tx.to == self.vault and tx.call in ("deposit(address,uint256)", "withdraw(address,uint256)"):
            token = self.tokens.get(tx.args[0].lower())
            amount, key = tx.args[1], (tx.sender, tx.args[0].lower())
            if token is None:
                return False
            if tx.call.startswith("deposit"):
                allowed = token.allowances.get((tx.sender, self.vault), 0)
                if allowed < amount or token.balances.get(tx.sender, 0) < amount:
                    return False
                token.allowances[(tx.sender, self.vault)] = allowed - amount
                token.balances[tx.sender] -= amount
                self.vault_balances[key] = self.vault_balances.get(key, 0) + amount
            else:
                if self.vault_balances.get(key, 0) < amount:
                    return False
                self.vault_balances[key] -= amount
                token.balances[tx.sender] = token.balances.get(tx.sender, 0) + amount
            return True
        return False

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            result = self._method(body["method"], body.get("params") or [])
            answer = {"jsonrpc": "2.0", "id": body.get("id"), "result": result}
        except ValueError as exc:
            answer = {"jsonrpc": "2.0", "id": body.get("id"), "error": {"code": -32000, "message": str(exc)}}
        return web.json_response(answer)

    def _method(self, method: str, params: list):
        if method == "eth_chainId":
            return hex(self.chain_id)
        if method == "eth_gasPrice":
            return hex(self.min_gas_price)
        if method == "eth_blockNumber":
            return hex(self.height)
        if method == "eth_getTransactionCount":  # "pending" is "latest" on Sei: mined ones only
            return hex(self.nonces.get(params[0].lower(), 0))
        if method == "eth_estimateGas":
            return hex(60_000)
        if method == "eth_call":
            return self._call(params[0])
        if method == "eth_sendRawTransaction":
            return self._send(bytes.fromhex(params[0].removeprefix("0x")))
        if method == "eth_getTransactionReceipt":
            return self._receipt(params[0])
        raise ValueError(f"method {method} is not served")

    def _call(self, call: dict):
        data = bytes.fromhex(call["data"].removeprefix("0x"))
        token = self.tokens.get(call["to"].lower())
        name = SELECTORS.get(data[:4])
        if token is None or name is None:
            raise ValueError("execution reverted")
        if name == "decimals()":
            return "0x" + encode(["uint8"], [token.decimals]).hex()
        args = decode([t for t in name[name.index("(") + 1:-1].split(",") if t], data[4:])
        if name == "balanceOf(address)":
            return "0x" + encode(["uint256"], [token.balances.get(args[0].lower(), 0)]).hex()
        return "0x" + encode(["uint256"], [token.allowances.get((args[0].lower(), args[1].lower()), 0)]).hex()

    def _send(self, raw: bytes) -> str:
        nonce, gas_price, _, to, _, data, v, _, _ = rlp.decode(raw)  # a legacy (type 0) transaction
        chain_id = (int.from_bytes(v, "big") - 35) // 2
        sender = Account.recover_transaction(raw).lower()
        nonce, gas_price = int.from_bytes(nonce, "big"), int.from_bytes(gas_price, "big")
        if chain_id != self.chain_id:
            raise ValueError(f"invalid chain id {chain_id}")
        expected = self.nonces.get(sender, 0) + sum(1 for t in self.mempool if t.sender == sender)
        if nonce != expected:
            raise ValueError(f"invalid nonce: expected {expected}, got {nonce}")
        if gas_price < self.min_gas_price:
            raise ValueError(f"insufficient fee: gas price {gas_price} below the minimum {self.min_gas_price}")
        name = SELECTORS.get(data[:4], "?")
        args = tuple(decode([t for t in name[name.index("(") + 1:-1].split(",") if t], data[4:])) if name != "?" else ()
        tx = Tx(sender, nonce, gas_price, chain_id, "0x" + to.hex(), name, args, "0x" + Web3.keccak(raw).hex())
        self.mempool.append(tx)
        self.txs.append(tx)
        return tx.hash

    def _receipt(self, tx_hash: str):
        tx = next((t for t in self.txs if t.hash == tx_hash and t.status >= 0), None)
        if tx is None:
            return None
        return {"transactionHash": tx.hash, "transactionIndex": "0x0", "blockHash": "0x" + "ab" * 32,
                "blockNumber": hex(self.height), "from": tx.sender, "to": tx.to, "cumulativeGasUsed": hex(50_000),
                "gasUsed": hex(50_000), "effectiveGasPrice": hex(tx.gas_price), "contractAddress": None, "logs": [],
                "logsBloom": "0x" + "00" * 256, "status": hex(tx.status), "type": "0x0"}
