"""Benchmarks: `make bench` runs them all and prints one table; each module measures one figure."""
