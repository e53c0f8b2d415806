"""The wallet key that logs in to Monaco and signs vault transactions on Sei EVM, never echoed.

The rules are the Sei adapter's (`adapters.sei.keys`): the secret comes from an environment
variable or a key file that group and others cannot read, never both; it is a 64-hex-digit
secp256k1 private key or a BIP-39 mnemonic (checksum checked before anything else sees it). A
mnemonic derives the EVM account at m/44'/60'/0'/0/0, as MetaMask and Sei's EVM wallets do
(docs.sei.io: Sei EVM accounts are Ethereum accounts, coin type 60).

No message, repr or exception raised here carries any part of the secret.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data

from adapters.sei.keys import KeyFileError, KeyLoadError, check_mnemonic, read_key_file

DEFAULT_ENV = "FLASHMM_MONACO_KEY"
EVM_HD_PATH = "m/44'/60'/0'/0/0"
_HEX_KEY = re.compile(r"(?:0x)?([0-9a-fA-F]{64})")
_SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

__all__ = ["DEFAULT_ENV", "EvmSigner", "KeyFileError", "KeyLoadError", "derive_evm_key", "load_evm_signer"]


class EvmSigner:
    """Signs for one EVM account. Holds the private key; refuses to be printed or pickled with it."""

    __slots__ = ("_account", "address")

    def __init__(self, private_key: bytes) -> None:
        self._account = Account.from_key(private_key)
        self.address: str = self._account.address  # EIP-55 checksummed

    def sign_personal(self, text: str) -> str:
        """EIP-191 personal_sign of `text`, as `0x` + 130 hex digits (r, s, v)."""
        return "0x" + bytes(self._account.sign_message(encode_defunct(text=text)).signature).hex()

    def sign_typed(self, typed_data: dict) -> str:
        """EIP-712 signature of a full typed-data message (`types`, `primaryType`, `domain`, `message`)."""
        return "0x" + bytes(self._account.sign_message(encode_typed_data(full_message=typed_data)).signature).hex()

    def sign_transaction(self, tx: dict) -> bytes:
        """The raw signed transaction, ready for `eth_sendRawTransaction`."""
        return bytes(self._account.sign_transaction(tx).raw_transaction)

    def __repr__(self) -> str:
        return f"EvmSigner(address={self.address!r})"

    def __reduce__(self):
        raise TypeError("an EvmSigner holds a private key and cannot be pickled or copied")


def load_evm_signer(env: str = DEFAULT_ENV, file: Path | None = None) -> EvmSigner:
    from_env = os.environ.get(env, "").strip() if env else ""
    if file is not None and from_env:
        raise KeyLoadError(f"both ${env} and key file {file} are set; "
                           "set only one so the trading wallet is unambiguous")
    if file is not None:
        return EvmSigner(derive_evm_key(read_key_file(Path(file)), f"key file {file}"))
    if from_env:
        return EvmSigner(derive_evm_key(from_env, f"${env}"))
    raise KeyLoadError(f"no wallet key: set ${env} to a 64-hex-digit private key or a BIP-39 mnemonic, "
                       "or name a key file (mode 600)")


def derive_evm_key(secret: str, source: str) -> bytes:
    """The 32-byte private key a secret names (hex key or mnemonic); errors name `source` only."""
    words = secret.split()
    if len(words) == 1:
        match = _HEX_KEY.fullmatch(words[0])
        if match is None:
            raise KeyLoadError(f"{source} is neither a BIP-39 mnemonic nor a 64-hex-digit private key")
        key = bytes.fromhex(match.group(1))
        if not 0 < int.from_bytes(key, "big") < _SECP256K1_ORDER:
            raise KeyLoadError(f"{source} is not a valid secp256k1 private key (out of range)")
        return key
    check_mnemonic(words, source)  # before eth-account, whose errors may quote a word
    Account.enable_unaudited_hdwallet_features()
    return bytes(Account.from_mnemonic(" ".join(words), account_path=EVM_HD_PATH).key)
