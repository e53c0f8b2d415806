"""FlashMM trading logic, written against NautilusTrader's Strategy/Actor API (never an adapter)."""
