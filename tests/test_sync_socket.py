# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The weight-sync socket fix (atropos_verl/sync_socket.py): loaded as a verl plugin everywhere, and what it keys on
really differs between two Ray clusters started on one host while the Ray job id does not."""

from __future__ import annotations

import importlib.metadata

import pytest

from atropos_verl.sync_socket import cluster_scoped_job_id, scope_handle, scope_sender_handle


def test_registered_as_a_verl_plugin_and_wraps_both_ends():
    plugins = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="verl.plugins")}
    assert plugins.get("sync_socket") == "atropos_verl.sync_socket"
    from verl.workers.rollout.vllm_rollout import vllm_async_server, vllm_rollout

    assert getattr(vllm_rollout.ServerAdapter.__init__, "_atropos_scoped", False)
    assert getattr(vllm_async_server.vLLMHttpServer.__init__, "_atropos_scoped", False)


def test_receiver_builds_the_path_from_the_scoped_job_id(monkeypatch):
    # verl's own receiver-side path (vLLM worker extension), fed the job id our server patch exports.
    from verl.workers.rollout.vllm_rollout.utils import vLLMColocateWorkerExtension

    class Worker:
        local_rank = 0
        model_runner = None

    monkeypatch.setenv("VERL_RAY_JOB_ID", "01000000-0123456789ab")
    monkeypatch.setenv("VERL_REPLICA_RANK", "0")
    monkeypatch.delenv("VERL_ZMQ_BASE_TRAINER_RANK", raising=False)
    handle = vLLMColocateWorkerExtension._get_zmq_handle(Worker())
    assert handle == "ipc:///tmp/rl-colocate-zmq-01000000-0123456789ab-replica-0-rank-0.sock"
    # The sender's path as verl builds it, then scoped by our patch.
    plain = "ipc:///tmp/rl-colocate-zmq-01000000-replica-0-rank-0.sock"
    assert scope_handle(plain, "01000000", "01000000-0123456789ab") == handle


def test_two_clusters_on_one_host_share_the_job_id_but_not_the_scoped_id():
    import ray

    from atropos_verl.platform.ray_cluster import start_ray

    seen = []
    for _ in range(2):
        cluster = start_ray(num_cpus=2, log_to_driver=False)
        try:

            @ray.remote(num_cpus=1)
            def in_actor_process() -> str:
                return cluster_scoped_job_id()

            driver = cluster_scoped_job_id()
            assert ray.get(in_actor_process.remote()) == driver
            seen.append((ray.get_runtime_context().get_job_id(), driver))
        finally:
            cluster.shutdown()
    (job_a, scoped_a), (job_b, scoped_b) = seen
    assert job_a == job_b, "Ray restarted job numbering differently; the collision this fix prevents may be gone"
    assert scoped_a != scoped_b


@pytest.mark.parametrize("handle", ["ipc:///tmp/other.sock", "tcp://127.0.0.1:5555"])
def test_other_handles_are_left_alone(handle):
    assert scope_handle(handle, "01000000", "01000000-x") == handle


def test_a_sender_handle_the_rewrite_does_not_match_is_loud(caplog):
    """If verl changes the handle's form, the server side is still scoped and the sync would stall: say so."""
    plain = "ipc:///tmp/rl-colocate-zmq-01000000-replica-0-rank-0.sock"
    assert scope_sender_handle(plain, "01000000", "01000000-ab") != plain
    assert not caplog.records
    changed = "ipc:///tmp/rl-colocate-01000000-r0-k0.sock"
    with pytest.warns(RuntimeWarning, match="will not meet"):
        assert scope_sender_handle(changed, "01000000", "01000000-ab") == changed
    assert any("does not have the form" in r.getMessage() for r in caplog.records)
