"""Decoding ABCI events from Sei's CometBFT 0.35 JSON.

Sei's RPC (tx_search, block_results, the websocket) carries each event as
`{"type": str, "attributes": [{"key": b64, "value": b64, "index": bool}, ...]}`: the type is plain
text but attribute keys and values are base64 (later CometBFT versions switched to plain text; Sei
did not). Fills and cancels of the CLOB contract arrive only as `wasm-*` event attributes, so a
misread attribute is a misread trade: decoding is strict (padded base64 alphabet only, UTF-8) and any
malformed input raises `EventDecodeError` and nothing else. Go encodes empty byte slices and
empty lists as null, so null keys, values and attribute lists read as empty.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

CONTRACT_ADDRESS_KEY = "_contract_address"


class EventDecodeError(ValueError):
    """The input is not a CometBFT 0.35 event list."""


@dataclass(frozen=True, slots=True)
class Event:
    """Attributes stay an ordered list of pairs: a key may repeat within one event."""

    type: str
    attributes: tuple[tuple[str, str], ...]

    def get(self, key: str) -> str | None:
        """The first value under `key`, None if absent."""
        return next((v for k, v in self.attributes if k == key), None)

    def all(self, key: str) -> tuple[str, ...]:
        return tuple(v for k, v in self.attributes if k == key)


def decode_events(obj: Any) -> list[Event]:
    if not isinstance(obj, list):
        raise EventDecodeError(f"events: expected a list, got {type(obj).__name__}")
    return [_event(i, event) for i, event in enumerate(obj)]


def wasm_events(events: Iterable[Event], contract: str | None = None) -> list[Event]:
    """Events a contract emitted: `wasm` for its plain attributes, `wasm-<name>` for its custom
    events (wasmd adds the prefix and the `_contract_address` attribute, so a contract cannot forge
    another contract's address)."""
    return [
        e
        for e in events
        if (e.type == "wasm" or e.type.startswith("wasm-"))
        and (contract is None or e.get(CONTRACT_ADDRESS_KEY) == contract)
    ]


def _event(i: int, event: Any) -> Event:
    if not isinstance(event, dict):
        raise EventDecodeError(f"event {i}: expected an object, got {type(event).__name__}")
    kind = event.get("type")
    if not isinstance(kind, str):
        raise EventDecodeError(f"event {i}: 'type' must be a string, got {type(kind).__name__}")
    attributes = event.get("attributes")
    if attributes is None:
        attributes = []
    if not isinstance(attributes, list):
        raise EventDecodeError(f"event {i} ({kind!r:.40}): 'attributes' must be a list, "
                               f"got {type(attributes).__name__}")
    return Event(kind,
                 tuple(_attribute(f"event {i} ({kind!r:.40}) attribute {j}", a) for j, a in enumerate(attributes)))


def _attribute(where: str, attribute: Any) -> tuple[str, str]:
    if not isinstance(attribute, dict):
        raise EventDecodeError(f"{where}: expected an object, got {type(attribute).__name__}")
    return _b64_text(where, "key", attribute.get("key")), _b64_text(where, "value", attribute.get("value"))


def _b64_text(where: str, field: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise EventDecodeError(f"{where}: {field} must be a base64 string, got {type(value).__name__}")
    try:
        data = base64.b64decode(value, validate=True)
    except ValueError:  # binascii.Error, or a non-ASCII str
        raise EventDecodeError(f"{where}: {field} {value[:40]!r} is not valid base64") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise EventDecodeError(f"{where}: {field} is not UTF-8 once base64-decoded") from None
