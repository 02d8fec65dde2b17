# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""start_ray/shutdown, and the Ray-facing patches on a real local cluster: P6 (resource check) and V2 (CPU ids)."""

from __future__ import annotations

import inspect

import psutil
import pytest

from atropos_verl.platform.ray_cluster import start_ray


@pytest.fixture(scope="module")
def cluster(plugin_active):
    c = start_ray(num_cpus=6, log_to_driver=False)
    yield c
    c.shutdown()


def test_short_private_temp_dir(cluster):
    import ray

    sockets = list(cluster.temp_dir.glob("session_*/sockets/*"))
    assert sockets and all(len(str(s)) <= 107 for s in sockets)
    assert str(cluster.temp_dir).startswith("/tmp/rv-")
    assert ray.cluster_resources()["CPU"] == 6 and "GPU" not in ray.cluster_resources()


def test_p6_resource_check_counts_logical_cpus(cluster):
    from verl.single_controller.ray.base import ResourcePoolManager

    from atropos_verl.platform.resources import _MARK

    ok = ResourcePoolManager(resource_pool_spec={"global_pool": [2]}, mapping={})  # 2 ranks x 3 CPUs = 6
    ok._check_resource_available()
    too_big = ResourcePoolManager(resource_pool_spec={"global_pool": [3]}, mapping={})
    with pytest.raises(ValueError, match="logical CPUs"):
        too_big._check_resource_available()
    original = getattr(ResourcePoolManager._check_resource_available, _MARK)
    with pytest.raises(ValueError, match="Total available GPUs 0"):
        original(ok)  # verl's own check still counts only GPU/NPU


def test_v2_workers_see_a_cpu_accelerator_id_and_the_plugin(cluster):
    import ray

    from atropos_verl.platform.resources import _MARK

    @ray.remote(num_cpus=1)
    def probe():
        import importlib.metadata as md

        import ray as r
        import verl  # noqa: F401  (loads the plugin through its entry point)

        ctx = r.get_runtime_context()
        return ctx.get_accelerator_ids()["CPU"], getattr(type(ctx).get_accelerator_ids, _MARK)(ctx), md.version("vllm")

    patched, original, vllm_version = ray.get(probe.remote())
    assert patched == ["0"] and "CPU" not in original  # Ray itself lists accelerators only
    assert vllm_version.endswith("+cpu")

    from verl.workers.rollout.vllm_rollout import vllm_async_server

    assert "get_accelerator_ids()[get_resource_name()][0]" in inspect.getsource(vllm_async_server.vLLMReplica)


def _still_running(pid: int, created: float) -> bool:
    """The recorded process is still there and has not exited (an exited child not yet reaped is a zombie)."""
    try:
        p = psutil.Process(pid)
        return p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_shutdown_stops_everything(cluster):
    """Runs last in this module: the fixture's own teardown then has nothing left to do."""
    pids = cluster.record_processes()
    assert set(cluster.roots) <= set(pids) and len(pids) > len(cluster.roots)  # Ray daemons and their workers
    cluster.shutdown()
    assert not [pid for pid, created in pids.items() if _still_running(pid, created)]
    assert not cluster.temp_dir.exists() and not cluster.descendants()
