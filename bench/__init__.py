"""Benchmarks: ``python -m bench.ingest`` (callback ingest), ``python -m bench.orders`` (order placement)."""
