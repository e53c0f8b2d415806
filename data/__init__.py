"""Recorded and synthetic market data: instrument definitions, tape generators, importers, catalogs."""
