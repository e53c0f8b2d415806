"""A local Sei chain emulator for FlashMM, so the venue layer can be exercised end to end without a
network: the same messages, queries, events and error codes as the real CLOB contract (CONTRACT.md),
with deterministic heights and ids so a test can state exactly what a block must produce.

`clob` is the contract's state machine alone. `chain` is the chain around it: accounts, CheckTx and
DeliverTx with the Cosmos SDK's codes, fees, bank transfers for deposits and withdrawals, the
`_contract_address` attribute wasmd adds, blocks and queries, deterministic and without sockets.
`server` serves a chain as CometBFT 0.35 JSON-RPC over a websocket, with a block timer and fault
switches; `replay` feeds it background liquidity from a catalog tape.
"""
