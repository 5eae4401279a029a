"""Benchmarks: the proxy against a bare WebSocket echo on the same uvicorn, side by side.

`python -m bench` (or `make bench`) runs everything and prints one table of medians and ratios;
docs/performance.md explains what is measured and shows the numbers.
"""
