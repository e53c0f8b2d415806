"""FlashMM's Monaco venue: the order book on Sei today (off-chain matching, settlement on Sei EVM).

`wire.py` holds every wire shape the adapter relies on, and the local Monaco (`local/`) speaks
through the same module, so client and emulator cannot drift apart. VENUE.md lists each shape
with the public source it came from, and what could not be confirmed (and is configurable).
"""

import sys as _sys

# eth-account imports py_ecc, which raises the interpreter's recursion limit to 100,000 when it is
# first imported. Deep junk (a WebSocket frame of 100,000 "[") would then recurse past the C stack
# and kill the process instead of raising RecursionError; every parser here relies on the latter.
# It is imported first, here, and the limit put back.
_LIMIT = _sys.getrecursionlimit()
import py_ecc  # noqa: E402,F401

_sys.setrecursionlimit(_LIMIT)
