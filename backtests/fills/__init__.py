"""Queue-aware passive fills for NautilusTrader 1.221 backtests (see `module.py`)."""
