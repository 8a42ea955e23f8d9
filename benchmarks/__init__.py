"""aioflow's benchmarks.

python -m benchmarks [--peers]     aioflow side by side with Metaflow and Prefect
python -m benchmarks.core          the core engine's own figures
python -m benchmarks.floor         issue 19's per-task figures, against a reference orchestrator
python -m pytest benchmarks/micro --benchmark-only    micro-benchmarks of the hot paths
"""
