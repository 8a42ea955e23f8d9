"""The flows `benchmarks.floor` runs in aioflow: one flow per file, as `aioflow run` wants.

Each is start -> a foreach over `n` items -> join -> end; they differ only in the foreach step:
`sync_artifact.py` (a sync step setting one small artifact), `async_artifact.py` (the same step,
async) and `sync_empty.py` (a sync step setting nothing). `benchmarks.reference_orchestrator`
runs the same three shapes with the same step bodies.
"""
