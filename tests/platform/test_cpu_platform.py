# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""PlatformCPU (P3, P5) and its Ray options."""

from __future__ import annotations

import inspect

import pytest
import torch


def test_registered_and_selected(plugin_active):
    from verl.plugin.platform import get_platform
    from verl.plugin.platform.platform_manager import PlatformRegistry

    from atropos_verl.platform.cpu_platform import PlatformCPU

    assert PlatformRegistry.get("cpu") is PlatformCPU
    assert isinstance(get_platform(), PlatformCPU)


def test_p3_current_device_is_a_device_string(plugin_active):
    """verl passes current_device() as a device; an int means "accelerator N" and fails without one."""
    import verl.utils.fsdp_utils as fsdp_utils

    from atropos_verl.platform.cpu_platform import PlatformCPU

    assert "to_empty(device=get_device_id())" in inspect.getsource(fsdp_utils)  # verl still does this
    with pytest.raises(RuntimeError):
        torch.nn.Linear(2, 2, device="meta").to_empty(device=0)
    layer = torch.nn.Linear(2, 2, device="meta").to_empty(device=PlatformCPU().current_device())
    assert layer.weight.device.type == "cpu"


def test_p5_device_module_has_cuda_style_calls(plugin_active):
    from verl.utils.device import get_torch_device

    missing = [n for n in ("memory_reserved", "max_memory_allocated", "mem_get_info", "get_rng_state", "ipc_collect")]
    assert not any(hasattr(torch.cpu, n) for n in missing)  # torch.cpu still lacks them
    dev = get_torch_device()
    assert dev.memory_reserved() > 0 and dev.max_memory_allocated() >= dev.memory_allocated() > 0
    free, total = dev.mem_get_info()
    assert 0 < free <= total
    state = dev.get_rng_state()
    a = torch.rand(3)
    dev.set_rng_state(state)
    assert torch.equal(a, torch.rand(3))
    dev.empty_cache(), dev.ipc_collect(), dev.set_per_process_memory_fraction(0.5), dev.synchronize()
    assert dev.Stream is torch.cpu.Stream  # everything else comes from torch.cpu


def test_ray_resource_options_request_nothing_extra(plugin_active):
    from verl.plugin.platform.platform_base import PlatformBase

    from atropos_verl.platform.cpu_platform import PlatformCPU

    p = PlatformCPU()
    assert p.ray_resource_name() == "CPU" and p.ray_resource_options(1) == {}
    # The base implementation would ask Ray for a custom "CPU" resource, which Ray rejects.
    assert PlatformBase.ray_resource_options(p, 1) == {"resources": {"CPU": 1}}
    assert p.is_ipc_supported() is False
