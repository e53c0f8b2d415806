"""What the venue says about a wallet, for `flashmm monaco`: the pair's token contracts (public
metadata) and, after the wallet's login, its balances on Monaco."""

from __future__ import annotations

from dataclasses import dataclass, field

from adapters.monaco.auth import MonacoAuth
from adapters.monaco.errors import VenueError
from adapters.monaco.keys import EvmSigner
from adapters.monaco.rest import MonacoRest
from adapters.monaco.wire import Codec, Wire


@dataclass
class VenueView:
    tokens: dict[str, str]  # symbol -> token contract on Sei EVM ("" when the pair does not say)
    balances: dict[str, dict[str, str]] = field(default_factory=dict)  # symbol -> available, locked, total


async def venue_view(api_url: str, symbol: str, wire: Wire, signer: EvmSigner, *, chain_id: int, client_id: str,
                     with_balances: bool) -> VenueView:
    codec = Codec(wire)
    rest = MonacoRest(api_url, codec)
    await rest.start()
    try:
        pairs, _ = codec.read_pairs_page(await rest.call("trading_pairs", query={"page": "1", "page_size": "100"},
                                                         auth=False))
        pair = next((p for p in pairs if p.symbol in (symbol, symbol.replace("/", "-"))), None)
        if pair is None:
            raise VenueError(f"Monaco lists no pair {symbol!r}")
        view = VenueView({pair.base_token: pair.base_token_contract, pair.quote_token: pair.quote_token_contract})
        if with_balances:
            rest.auth = MonacoAuth(codec, signer, chain_id=chain_id, client_id=client_id)
            for b in codec.read_balances(await rest.call("balances")):
                view.balances[b.symbol or b.asset_id] = {"available": str(b.available), "locked": str(b.locked),
                                                         "total": str(b.total)}
        return view
    finally:
        await rest.close()
