"""Custody on Sei EVM with web3.py: the wallet's ERC-20 balances, approve, and Monaco's vault.

A deposit is two ordinary Sei EVM transactions, `approve(vault, amount)` on the token (skipped when
the allowance already covers it) and the vault's deposit call; a withdrawal is one call. Each is
sent only after the previous one's receipt: Sei has instant finality, so one receipt is final
(docs.sei.io: "~400 ms blocks, instant finality").

What Sei EVM requires ([SEI] docs.sei.io/evm): the chain id is checked before anything is signed
(1329 mainnet, 1328 testnet); a transaction pays at least the chain's minimum gas price, which
governance sets, so it is read from `eth_gasPrice` and never hard-coded; and the RPC treats the
"pending" block tag as "latest" (sei-chain evmrpc), so a count of pending transactions cannot be
had from it: nonces are counted here, from the confirmed count. The vault's function signatures are
in `wire.VaultAbi` (UNCONFIRMED; see VENUE.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal

from eth_abi import decode, encode
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3Exception

from adapters.monaco.errors import VenueError
from adapters.monaco.keys import EvmSigner
from adapters.monaco.wire import VaultAbi

ERC20_BALANCE_OF = "balanceOf(address)"  # EIP-20
ERC20_ALLOWANCE = "allowance(address,address)"
ERC20_APPROVE = "approve(address,uint256)"
ERC20_DECIMALS = "decimals()"


class VaultError(VenueError):
    """A custody transaction could not be made, or reverted; the message says which and why."""


@dataclass(frozen=True)
class Sent:
    what: str
    tx_hash: str
    nonce: int
    gas_price: int
    block: int


def selector(signature: str) -> bytes:
    return Web3.keccak(text=signature)[:4]


def _arg_types(signature: str) -> list[str]:
    inner = signature[signature.index("(") + 1: signature.rindex(")")]
    return [t for t in inner.split(",") if t]


def calldata(signature: str, *args) -> bytes:
    return selector(signature) + encode(_arg_types(signature), list(args))


class Vault:
    def __init__(self, rpc_url: str, signer: EvmSigner, *, chain_id: int, vault: str, abi: VaultAbi | None = None,
                 gas_margin: float = 1.25, receipt_timeout_s: float = 30.0, poll_s: float = 0.2) -> None:
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
        self.rpc_url = rpc_url
        self.signer = signer
        self.chain_id = chain_id
        self.vault = Web3.to_checksum_address(vault) if vault else ""
        self.abi = abi or VaultAbi()
        self.gas_margin = gas_margin
        self.receipt_timeout_s, self.poll_s = receipt_timeout_s, poll_s
        self._nonce: int | None = None

    def _rpc(self, what: str, call):
        try:
            return call()
        except (Web3Exception, OSError, ValueError) as exc:
            raise VaultError(f"{what} via {self.rpc_url} failed: {type(exc).__name__}: {str(exc)[:300]}") from None

    def check_chain(self) -> None:
        found = self._rpc("eth_chainId", lambda: self.w3.eth.chain_id)
        if found != self.chain_id:
            raise VaultError(f"the RPC at {self.rpc_url} serves chain {found}, the config says {self.chain_id}")

    # -- reads ------------------------------------------------------------------------------------

    def _call(self, token: str, signature: str, *args) -> bytes:
        data = calldata(signature, *args)
        return self._rpc(f"eth_call {signature}", lambda: bytes(self.w3.eth.call(
            {"to": Web3.to_checksum_address(token), "data": "0x" + data.hex()})))

    def decimals(self, token: str) -> int:
        return decode(["uint8"], self._call(token, ERC20_DECIMALS))[0]

    def balance(self, token: str) -> int:
        return decode(["uint256"], self._call(token, ERC20_BALANCE_OF, self.signer.address))[0]

    def allowance(self, token: str) -> int:
        return decode(["uint256"], self._call(token, ERC20_ALLOWANCE, self.signer.address, self.vault))[0]

    def to_units(self, token: str, amount: Decimal) -> int:
        units = amount.scaleb(self.decimals(token))
        if units <= 0 or units != units.to_integral_value():
            raise VaultError(f"amount {amount} is not a positive multiple of the token's smallest unit")
        return int(units)

    # -- writes -----------------------------------------------------------------------------------

    def deposit(self, token: str, amount: Decimal) -> list[Sent]:
        self._require_vault()
        units = self.to_units(token, amount)
        if self.balance(token) < units:
            raise VaultError(f"the wallet holds less than {amount} of token {token}")
        sent = []
        if self.allowance(token) < units:
            sent.append(self._send("approve", token, calldata(ERC20_APPROVE, self.vault, units)))
        sent.append(self._send("deposit", self.vault, calldata(self.abi.deposit, Web3.to_checksum_address(token),
                                                                   units)))
        return sent

    def withdraw(self, token: str, amount: Decimal) -> list[Sent]:
        self._require_vault()
        units = self.to_units(token, amount)
        return [self._send("withdraw", self.vault, calldata(self.abi.withdraw, Web3.to_checksum_address(token),
                                                               units))]

    def _require_vault(self) -> None:
        if not self.vault:
            raise VaultError("no vault address: set [monaco] vault_address or pass --vault (Monaco's is UNCONFIRMED)")
        self.check_chain()

    def _send(self, what: str, to: str, data: bytes) -> Sent:
        address = self.signer.address
        if self._nonce is None:
            self._nonce = self._rpc("eth_getTransactionCount", lambda: self.w3.eth.get_transaction_count(
                address, "latest"))
        gas_price = self._rpc("eth_gasPrice", lambda: self.w3.eth.gas_price)  # the chain's minimum, or more
        tx = {"chainId": self.chain_id, "nonce": self._nonce, "to": Web3.to_checksum_address(to), "value": 0,
              "data": "0x" + data.hex(), "gasPrice": gas_price}
        estimate = self._rpc(f"eth_estimateGas ({what})", lambda: self.w3.eth.estimate_gas({**tx, "from": address}))
        tx["gas"] = int(estimate * self.gas_margin)
        raw = self.signer.sign_transaction(tx)
        tx_hash = self._rpc(f"eth_sendRawTransaction ({what})", lambda: self.w3.eth.send_raw_transaction(raw))
        self._nonce += 1
        receipt = self._receipt(tx_hash, what)
        if receipt["status"] != 1:
            raise VaultError(f"{what} transaction {tx_hash.hex()} reverted in block {receipt['blockNumber']}")
        return Sent(what, "0x" + bytes(tx_hash).hex(), tx["nonce"], gas_price, receipt["blockNumber"])

    def _receipt(self, tx_hash, what: str):
        deadline = time.monotonic() + self.receipt_timeout_s
        while True:
            try:
                return self.w3.eth.get_transaction_receipt(tx_hash)
            except TransactionNotFound:
                pass
            except (Web3Exception, OSError, ValueError) as exc:
                raise VaultError(f"waiting for the {what} receipt failed: {type(exc).__name__}") from None
            if time.monotonic() > deadline:
                self._nonce = None  # it may or may not land: count again from the chain next time
                raise VaultError(f"no receipt for the {what} transaction 0x{bytes(tx_hash).hex()} within "
                                 f"{self.receipt_timeout_s:g} s; look it up before sending again")
            time.sleep(self.poll_s)
