"""Read past runs back with the client, as in a notebook: data, tags, logs, failures, resumes.

Run `python examples/artifact_flow.py run` first, then `python examples/read_runs.py`.
The second half makes a run that fails and resumes it (in this script), to have a failure and
a resume to read; the same reads work on any run, from any process, even one in progress.
"""

import anyio

from aioflow import Flow, FlowFailed, FlowSpec, Metaflow, Task, namespace, resume_flow, step
from aioflow import run_flow_sync

# %% Which flows and runs are there?
namespace(None)  # see every user's runs (the default is your own: user:<name>)
run = Flow("ArtifactFlow").latest_run
print(f"{run} successful={run.successful}")
for step_ in run:  # steps, newest first
    task = step_.task
    print(f"  {step_.id}: {sorted(a.id for a in task.artifacts)}")
print("flows in the store:", sorted(f.id for f in Metaflow().flows))

# %% Tags: the system's, and our own (added here, stored for every reader)
print("system tags:", sorted(t.split(":")[0] for t in run.system_tags))
run.add_tag("reviewed")
print("user tags:", sorted(run.user_tags))
print("runs tagged reviewed:", [r.id for r in Flow("ArtifactFlow").runs("reviewed")][:3])

# %% Logs: what each task printed, with timestamps
end = run["end"].task
for stamp, line in end.loglines("stdout"):
    print(f"end printed at {stamp:%H:%M:%S}: {line}")
print("end's metadata:", {k: end.metadata_dict[k] for k in ("attempt", "status")})


# %% A run that fails, and its resume
class FlakyFlow(FlowSpec):
    """Squares numbers; fails on 3 unless told it is fixed."""

    @step
    def start(self):
        self.numbers = [1, 2, 3]
        self.next(self.square, foreach="numbers")

    @step
    def square(self):
        if self.input == 3 and not FIXED:
            raise ValueError("cannot square 3 today")
        self.value = self.input**2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.value for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


FIXED = False
try:
    run_flow_sync(FlakyFlow, quiet=True)
except FlowFailed as failure:
    failed = Task(failure.pathspec)
    print(f"failed: {failed.pathspec} index={failed.index}")
    print(f"  exception: {failed.exception.type}: {failed.exception.exception}")
    print(f"  stderr ends with: {failed.stderr.splitlines()[-1]}")

FIXED = True
resumed = anyio.run(lambda: resume_flow(FlakyFlow, quiet=True))  # `await` it in a notebook
print(f"resumed {resumed.origin_pathspec} as {resumed}: total={resumed.data.total}")
for task in sorted(resumed["square"], key=lambda t: t.index):
    origin = task.origin_pathspec or "ran again"
    print(f"  square[{task.index}] <- {origin}")

# %% Back to the data
print(run["end"].task.data.dataset)
