"""aioflow's benchmarks: `python -m benchmarks.core` prints the core engine's figures."""
