"""Micro-benchmarks of aioflow's hot paths (pytest-benchmark; not part of the test suite).

python -m pytest benchmarks/micro --benchmark-only
"""
