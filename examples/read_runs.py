"""Read past runs back with the client, as in a notebook.

Run `python examples/artifact_flow.py run` first, then `python examples/read_runs.py`.
"""

from aioflow import Flow, namespace

namespace(None)  # see every user's runs
run = Flow("ArtifactFlow").latest_run
print(f"{run} successful={run.successful}")
for step in run:
    task = step.task
    print(f"  {step.id}: {sorted(a.id for a in task.artifacts)}")
print(run["end"].task.data.dataset)
