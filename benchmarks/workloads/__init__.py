"""The benchmark workloads, written once per tool with the same logic, side by side.

`<workload>_aioflow.py`, `<workload>_metaflow.py` and `<workload>_prefect.py` hold the same flow
for each tool: the same steps, the same artifacts, the same checks at the end. Each file is a
script run as a fresh process by the runner (`python -m benchmarks`): the aioflow and Metaflow
files with `python FILE run --n N ...`, the Prefect ones with `python FILE --n N`. What they
share (sizes, the CPU kernel, the merge rule for Prefect) is in `bench_common.py`, which uses the
standard library only, because the peers' interpreter imports it too.
"""
