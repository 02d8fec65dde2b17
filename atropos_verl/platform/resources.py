# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Ray resource fixes for the CPU platform (P6, V2)."""

from __future__ import annotations

import functools
import os
from types import ModuleType

from atropos_verl.import_hooks import when_imported

POOL_TARGET = "verl.single_controller.ray.base"
_MARK = "__atropos_verl_cpu__"


def required_cpus(resource_pool_spec: dict[str, list[int]], max_colocate_count: int) -> int:
    """Logical CPUs the resource pools reserve: each rank's bundle is {"CPU": max_colocate_count}."""
    return sum(sum(nodes) for nodes in resource_pool_spec.values()) * max_colocate_count


def _check_cpu_resources(self) -> None:
    """CPU replacement for `ResourcePoolManager._check_resource_available` (P6).

    The original (`verl/single_controller/ray/base.py:226-242`) counts only "GPU"/"NPU" per node, so on a CPU cluster
    it always reports "Total available GPUs 0 is less than total desired GPUs N". On CPU, each rank's placement bundle
    is {"CPU": max_colocate_count} (`base.py:146-148` with `ray_resource_name() == "CPU"`), so check logical CPUs.
    """
    import ray

    total = int(ray.cluster_resources().get("CPU", 0))
    need = required_cpus(self.resource_pool_spec, self.max_colocate_count)
    if total < need:
        raise ValueError(
            f"Ray has {total} logical CPUs but verl's resource pools reserve {need} "
            f"({self.resource_pool_spec}, max_colocate_count={self.max_colocate_count}); start Ray with more logical "
            "CPUs (atropos_verl.platform.ray_cluster.start_ray does)."
        )


def _patch_pool_check(module: ModuleType) -> None:
    cls = module.ResourcePoolManager
    if not hasattr(cls._check_resource_available, _MARK):
        setattr(_check_cpu_resources, _MARK, cls._check_resource_available)
        cls._check_resource_available = _check_cpu_resources


def _with_cpu_accelerator_id(original):
    @functools.wraps(original)
    def get_accelerator_ids(self):
        ids = original(self)
        if "CPU" not in ids:
            ids = {**ids, "CPU": [os.environ.get("LOCAL_RANK", "0")]}
        return ids

    setattr(get_accelerator_ids, _MARK, original)
    return get_accelerator_ids


def _patch_accelerator_ids(module: ModuleType) -> None:
    """V2: give `RuntimeContext.get_accelerator_ids()` a "CPU" entry.

    `verl/workers/rollout/vllm_rollout/vllm_async_server.py:1348` (and `vllm_pd_replica.py:115`,
    `verl/single_controller/base/worker.py:279`) index it with `get_resource_name()`, which is "CPU" here; Ray lists
    accelerators only, so that is `KeyError: 'CPU'`. The value is the worker's local rank; verl only copies it into
    the server actor's `CPU_VISIBLE_DEVICES`, which vLLM's CPU platform does not read.
    """
    cls = module.RuntimeContext
    if not hasattr(cls.get_accelerator_ids, _MARK):
        cls.get_accelerator_ids = _with_cpu_accelerator_id(cls.get_accelerator_ids)


def install() -> None:
    when_imported(POOL_TARGET, _patch_pool_check)
    when_imported("ray.runtime_context", _patch_accelerator_ids)
