"""Benchmarks: one module per benchmark, run by ``python bench/run.py [name ...]``."""
