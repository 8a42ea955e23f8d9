"""`@kubernetes` and `@batch`: steps written for Metaflow's remote compute layers.

aioflow accepts both with every keyword argument Metaflow documents, so a flow written for a
cluster runs unchanged. The runtime sends such a step to the Dask executor when one is
registered, and otherwise runs it here, saying so once per run; `cpu`, `memory` and `gpu` given
to them reserve local resources as `@resources` does (the larger amount when both are given,
as in Metaflow). `--with kubernetes` and `--with batch` attach them to every step.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .decorators import StepDecorator, _number, register, step_decorator

__all__ = ["BatchDecorator", "KubernetesDecorator", "batch", "kubernetes"]


class _RemoteDecorator(StepDecorator):
    remote = True

    def validate(self) -> None:
        """The amounts given are non-negative numbers; the rest is the cluster's business."""
        for attr in ("cpu", "memory", "gpu", "disk", "shared_memory"):
            value = self.attributes.get(attr)
            if value is not None:
                _number(self.name, attr, value)


class KubernetesDecorator(_RemoteDecorator):
    """Metaflow's `@kubernetes(...)`: accepted with all its documented arguments."""

    name = "kubernetes"
    defaults: ClassVar[dict[str, Any]] = {
        **{"cpu": "1", "memory": "4096", "disk": "10240", "image": None},
        **{"image_pull_policy": None, "image_pull_secrets": None, "service_account": None},
        **{"secrets": None, "node_selector": None, "namespace": None, "gpu": None},
        **{"gpu_vendor": None, "tolerations": None, "labels": None, "annotations": None},
        **{"use_tmpfs": False, "tmpfs_tempdir": True, "tmpfs_size": None, "tmpfs_path": None},
        **{"persistent_volume_claims": None, "shared_memory": None, "port": None},
        **{"compute_pool": None, "hostname_resolution_timeout": 600, "qos": "Burstable"},
        **{"security_context": None},
    }


class BatchDecorator(_RemoteDecorator):
    """Metaflow's `@batch(...)` (AWS Batch): accepted with all its documented arguments."""

    name = "batch"
    defaults: ClassVar[dict[str, Any]] = {
        **{"cpu": None, "gpu": None, "memory": None, "image": None, "queue": None},
        **{"iam_role": None, "execution_role": None, "shared_memory": None, "max_swap": None},
        **{"swappiness": None, "aws_batch_tags": None, "use_tmpfs": False},
        **{"tmpfs_tempdir": True, "tmpfs_size": None, "tmpfs_path": None, "inferentia": None},
        **{"trainium": None, "efa": None, "ephemeral_storage": None, "log_driver": None},
        **{"log_options": None, "host_volumes": None, "efs_volumes": None, "privileged": None},
    }


register(KubernetesDecorator)
register(BatchDecorator)
kubernetes = step_decorator(KubernetesDecorator)
batch = step_decorator(BatchDecorator)
