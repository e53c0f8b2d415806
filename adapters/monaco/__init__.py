"""FlashMM's Monaco venue: the order book on Sei today (off-chain matching, settlement on Sei EVM).

`wire.py` holds every wire shape the adapter relies on, and the local Monaco (`local/`) speaks
through the same module, so client and emulator cannot drift apart. VENUE.md lists each shape
with the public source it came from, and what could not be confirmed (and is configurable).
"""
