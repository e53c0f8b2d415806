"""The live node: the backtested strategy trading Sei live or on paper, plus record and parity."""
