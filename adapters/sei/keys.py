"""Loading the key FlashMM signs its Sei transactions with, without ever echoing it.

The secret comes from an environment variable or a key file, never both (two sources could hold
two different keys, and the account that trades must be unambiguous). It is either a BIP-39
mnemonic, derived along Sei's Cosmos path m/44'/118'/0'/0/0 (coin type 118, no passphrase) as
`seid keys add --recover` does, or a 64-hex-digit secp256k1 private key.

Secrets leak through logs and crash reports, so no message, repr or exception raised here carries
any part of the secret, and no exception is raised while another one that might (such as cosmpy's
"Invalid mnemonic word: <word>") is being handled: the mnemonic is validated here, checksum
included, before cosmpy sees it. A checksum check also stops a mistyped but valid-looking phrase
from silently deriving a different, empty account.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

from cosmpy.crypto.address import Address
from cosmpy.crypto.keypairs import PrivateKey
from cosmpy.mnemonic import derive_child_key_from_mnemonic
from cosmpy.mnemonic.words import ENGLISH_MNEMONIC_WORDS_LIST
from ecdsa import SECP256k1

DEFAULT_ENV = "FLASHMM_SEI_MNEMONIC"
SEI_PREFIX = "sei"
SEI_HD_PATH = "m/44'/118'/0'/0/0"
MNEMONIC_LENGTHS = (12, 15, 18, 21, 24)
MAX_KEY_FILE_BYTES = 4096

_WORD_INDEX = {word: i for i, word in enumerate(ENGLISH_MNEMONIC_WORDS_LIST)}
_HEX_KEY = re.compile(r"(?:0x)?([0-9a-fA-F]{64})")


class KeyLoadError(ValueError):
    """No usable signing key; the message names the source, never the secret."""


class KeyFileError(KeyLoadError):
    """The key file is unsafe (group/world permissions), not a regular file, or unreadable."""


class Signer:
    """Signs for one Sei account. Holds the private key; refuses to be printed or pickled with it."""

    __slots__ = ("_key", "address", "public_key_bytes")

    def __init__(self, private_key: PrivateKey):
        self._key = private_key
        self.public_key_bytes: bytes = private_key.public_key.public_key_bytes
        self.address: str = str(Address(private_key.public_key, prefix=SEI_PREFIX))

    def sign(self, message: bytes) -> bytes:
        """Cosmos secp256k1 signature of `message` (the SignDoc bytes for SIGN_MODE_DIRECT):
        ECDSA over SHA-256, deterministic (RFC 6979), low-S as the chain requires, 64 bytes r||s."""
        return self._key.sign(message, deterministic=True, canonicalise=True)

    def __repr__(self) -> str:
        return f"Signer(address={self.address!r})"

    def __reduce__(self):
        raise TypeError("a Signer holds a private key and cannot be pickled or copied")


def load_signer(env: str = DEFAULT_ENV, file: Path | None = None) -> Signer:
    from_env = os.environ.get(env, "").strip()
    if file is not None and from_env:
        raise KeyLoadError(f"both ${env} and key file {file} are set; "
                           "set only one so the signing account is unambiguous")
    if file is not None:
        return _signer(read_key_file(Path(file)), f"key file {file}")
    if from_env:
        return _signer(from_env, f"${env}")
    raise KeyLoadError(
        f"no signing key: set ${env} to a BIP-39 mnemonic or a 64-hex-digit private key, or pass a key file (mode 600)"
    )


def read_key_file(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise KeyFileError(f"key file {path}: cannot open ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        # Checked on the open descriptor, so the file cannot be swapped between check and read.
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise KeyFileError(f"key file {path} is not a regular file")
        if mode & 0o077:
            raise KeyFileError(
                f"key file {path} has mode {stat.S_IMODE(mode):04o}; "
                f"group and others must have no access (chmod 600 {path})"
            )
        data = f.read(MAX_KEY_FILE_BYTES + 1)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"key file {path} is larger than {MAX_KEY_FILE_BYTES} bytes; it cannot be a key")
    text = _utf8_or_none(data)
    if text is None:
        raise KeyFileError(f"key file {path} is not UTF-8 text")
    return text.strip()


def _utf8_or_none(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:  # its message quotes the offending byte, so it must not propagate
        return None


def _signer(secret: str, source: str) -> Signer:
    words = secret.split()
    if len(words) == 1:
        return Signer(PrivateKey(_hex_private_key(words[0], source)))
    check_mnemonic(words, source)
    return Signer(PrivateKey(derive_child_key_from_mnemonic(" ".join(words), path=SEI_HD_PATH)))


def _hex_private_key(word: str, source: str) -> bytes:
    match = _HEX_KEY.fullmatch(word)
    if match is None:
        raise KeyLoadError(f"{source} is neither a BIP-39 mnemonic nor a 64-hex-digit private key")
    key = bytes.fromhex(match.group(1))
    if not 0 < int.from_bytes(key, "big") < SECP256k1.order:
        raise KeyLoadError(f"{source} is not a valid secp256k1 private key (out of range)")
    return key


def check_mnemonic(words: list[str], source: str) -> None:
    if len(words) not in MNEMONIC_LENGTHS:
        raise KeyLoadError(f"{source}: a BIP-39 mnemonic has 12, 15, 18, 21 or 24 words, not {len(words)}")
    indexes = []
    for position, word in enumerate(words, start=1):
        if word not in _WORD_INDEX:
            raise KeyLoadError(f"{source}: mnemonic word {position} is not in the BIP-39 English word list")
        indexes.append(_WORD_INDEX[word])
    bits = len(words) * 11
    checksum_bits = bits // 33
    packed = 0
    for index in indexes:
        packed = (packed << 11) | index
    entropy = (packed >> checksum_bits).to_bytes((bits - checksum_bits) // 8, "big")
    expected = hashlib.sha256(entropy).digest()[0] >> (8 - checksum_bits)
    if packed & ((1 << checksum_bits) - 1) != expected:
        raise KeyLoadError(f"{source}: mnemonic checksum does not match (a word is mistyped or out of order)")
