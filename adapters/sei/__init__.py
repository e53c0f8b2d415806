"""FlashMM's Sei venue: the wire formats of Sei's Cosmos side, kept apart from any live transport.

The venue is a CosmWasm CLOB contract (interface in CONTRACT.md), not Sei's x/dex module, which
was removed from the chain in 2024. This package starts with what can be tested offline against
real chain data: decoding signed transactions (`codec`), decoding the base64 event attributes of
Sei's CometBFT 0.35 JSON (`events`), and loading the signing key without ever echoing it (`keys`).
"""
