"""A local Sei chain emulator for FlashMM, so the venue layer can be exercised end to end without a
network: the same messages, queries, events and error codes as the real CLOB contract (CONTRACT.md),
with deterministic heights and ids so a test can state exactly what a block must produce.

`clob` is the contract's state machine alone. The chain around it (bank transfers for deposits and
withdrawals, the `_contract_address` attribute wasmd adds, blocks, transactions) is a later piece.
"""
