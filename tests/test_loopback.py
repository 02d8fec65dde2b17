# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Single-node loopback binding: when it applies, and the upstream Ray/verl lines it relies on."""

from __future__ import annotations

import inspect
import subprocess
import sys

from omegaconf import OmegaConf

from atropos_verl.trainer.loopback import FLAG, single_node


def _cfg(nnodes: int = 1, address: str | None = None):
    return OmegaConf.create({"trainer": {"nnodes": nnodes}, "ray_kwargs": {"ray_init": {"address": address}}})


def test_single_node_only_without_a_cluster_to_join(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert single_node(_cfg())
    assert not single_node(_cfg(nnodes=2))
    assert not single_node(_cfg(address="10.0.0.1:6379"))
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    assert not single_node(_cfg())


def test_ray_node_ip_is_loopback_when_the_flag_is_off():
    """`ray/_private/services.py:815`: with the flag off, Ray's node IP (what every server binds) is loopback."""
    code = ("from atropos_verl.trainer.loopback import bind_loopback; bind_loopback(); "
            "from ray._private import services; print(services.get_node_ip_address())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={
        "PATH": "/usr/bin:/bin"}).stdout.strip()
    assert out == "127.0.0.1"
    from ray._private import ray_constants

    assert ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR == FLAG


def test_verl_vllm_server_binds_ray_node_ip():
    """`verl/workers/rollout/vllm_rollout/vllm_async_server.py:179`: the HTTP server's host is Ray's node IP."""
    from verl.workers.rollout.vllm_rollout import vllm_async_server

    src = inspect.getsource(vllm_async_server)
    assert 'self._server_address = ray.util.get_node_ip_address().strip("[]")' in src
    assert "run_uvicorn(app, args, self._server_address)" in src
