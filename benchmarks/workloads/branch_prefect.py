"""Branch: an 8-way static split, each arm setting its own artifact, joined by merge_artifacts
(Prefect)."""

from bench_common import BRANCHES, merge_artifacts
from prefect import flow, task


@task
def start():
    return {"common": "set before the split, the same on every arm"}


@task
def arm(artifacts, i):
    return {**artifacts, f"r{i}": i}


@task
def join(arms):
    return merge_artifacts(arms)


@task
def end(artifacts):
    results = [artifacts[f"r{i}"] for i in range(BRANCHES)]
    assert results == list(range(BRANCHES)), results
    assert artifacts["common"].startswith("set before")


@flow
def bench_branch():
    """start -> 8 arms submitted at once -> join (merge) -> end."""
    artifacts = start()
    arms = [arm.submit(artifacts, i) for i in range(BRANCHES)]
    end(join(arms))


if __name__ == "__main__":
    bench_branch()
