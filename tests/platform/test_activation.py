# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The plugin is found through verl's entry point, is active on a CPU host, and inert where an accelerator is."""

from __future__ import annotations

import importlib.metadata

import pytest

from atropos_verl import host_detect as detect

from .conftest import run_python


def test_entry_point_is_declared():
    eps = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="verl.plugins")}
    assert eps.get("cpu") == "atropos_verl.platform"
    assert eps.get("server_key") == "atropos_verl.server_key"  # verl's SGLang control client sends the run's key


def test_verl_import_activates_cpu_platform_without_env_vars():
    out = run_python(
        "import verl, atropos_verl.platform as p\n"
        "from verl.plugin.platform import get_platform\n"
        "pl = get_platform()\n"
        "print(p.is_active(), type(pl).__name__, pl.device_name, pl.communication_backend_name())"
    )
    assert out == "True PlatformCPU cpu gloo"


@pytest.mark.parametrize(
    ("env", "prelude"),
    [
        ({"VERL_PLATFORM": "nvidia"}, ""),
        ({"ATROPOS_VERL_CPU_PLATFORM": "0"}, ""),
        # What a CUDA host looks like to the plugin: torch reports an available device.
        ({}, "import torch; torch.cuda.is_available = lambda: True\n"),
    ],
    ids=["verl-platform-nvidia", "disabled", "cuda-visible"],
)
def test_inert_when_not_cpu_platform(env, prelude):
    out = run_python(
        prelude + "import importlib.metadata as md, verl, atropos_verl.platform as p\n"
        "from atropos_verl import import_hooks as _hooks\n"
        "from atropos_verl import server_key as k, sync_socket as s\n"
        "from verl.plugin.platform.platform_manager import PlatformRegistry\n"
        "import ray.runtime_context as rc\n"
        "try:\n    v = md.version('vllm')\nexcept md.PackageNotFoundError:\n    v = None\n"
        "every_platform = (s.SENDER_MODULE, s.SERVER_MODULE, k.SGLANG_CLIENT_MODULE)\n"
        "cpu_hooks = tuple(m for m in _hooks.pending_modules() if m not in every_platform)\n"
        "print(p.is_active(), v, cpu_hooks, hasattr(rc.RuntimeContext.get_accelerator_ids,"
        " '__atropos_verl_cpu__'), 'cpu' in PlatformRegistry.registered_names())",
        env=env,
    )
    # The class is registered (verl probes it last), but no CPU patch is installed (the sync-socket and server-key
    # plugins apply on every platform).
    assert out == "False None () False True"


def test_detection_prefers_accelerators(monkeypatch):
    monkeypatch.delenv("VERL_PLATFORM", raising=False)
    monkeypatch.delenv(detect.ENABLE_ENV, raising=False)
    monkeypatch.setattr(detect, "host_has_accelerator", lambda: True)
    assert detect.cpu_platform_requested() is False
    monkeypatch.setattr(detect, "host_has_accelerator", lambda: False)
    assert detect.cpu_platform_requested() is True
    monkeypatch.setenv("VERL_PLATFORM", "cpu")
    monkeypatch.setattr(detect, "host_has_accelerator", lambda: True)
    assert detect.cpu_platform_requested() is True
