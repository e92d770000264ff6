"""Helpers of ``benchmarks/compare_peers.py``: workload trainers, tool adapters, store readers."""
