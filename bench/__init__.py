"""Throughput benchmark: a plain PyTorch loop, Uncia's pipeline and the model alone, side by side.

Run it with `python -m bench` (or `make bench`) from the repository root; docs/benchmarks.md
says how to read the figures it prints and writes to bench/results/latest.json.
"""
