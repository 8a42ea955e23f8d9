"""Big artifact: 200 MB made in start, carried untouched through 3 steps and a 4-way branch,
merged by merge_artifacts and read once at the end (Prefect)."""

from bench_common import MB, merge_artifacts, payload, prefect_args
from prefect import flow, task


@task
def start(size_mb):
    return {"big": payload(size_mb)}


@task
def carry(artifacts):
    return artifacts


@task
def join(arms):
    return merge_artifacts(arms)


@task
def end(artifacts, size_mb):
    assert len(artifacts["big"]) == size_mb * MB


@flow
def bench_big(size_mb: int = 200):
    """start -> 3 steps -> 4 arms submitted at once -> join (merge) -> end."""
    artifacts = start(size_mb)
    for _ in range(3):
        artifacts = carry(artifacts)
    arms = [carry.submit(artifacts) for _ in range(4)]
    end(join(arms), size_mb)


if __name__ == "__main__":
    bench_big(prefect_args(size_mb=200).size_mb)
