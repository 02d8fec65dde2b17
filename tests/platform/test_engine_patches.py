# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""P1 (FSDP engines for device "cpu") and P4 (no pinned memory)."""

from __future__ import annotations

import inspect

import pytest
import torch


@pytest.fixture(scope="module")
def transformer_impl(plugin_active):
    import verl.workers.engine.fsdp.transformer_impl as module

    return module


def test_p1_upstream_registers_accelerators_only(transformer_impl):
    src = inspect.getsource(transformer_impl)
    assert 'backend=["fsdp", "fsdp2"], device=["cuda", "npu"])\nclass FSDPEngineWithLMHead' in src
    assert 'backend=["fsdp", "fsdp2"], device=["cuda", "npu"])\nclass FSDPEngineWithValueHead' in src


def test_p1_cpu_lookup_finds_fsdp_engines(transformer_impl):
    from verl.workers.engine.base import EngineRegistry

    for backend in ("fsdp", "fsdp2"):
        assert EngineRegistry.get_engine_cls("language_model", backend) is transformer_impl.FSDPEngineWithLMHead
        assert EngineRegistry.get_engine_cls("value_model", backend) is transformer_impl.FSDPEngineWithValueHead


def test_p4_offload_policy_is_unpinned(transformer_impl):
    assert "CPUOffloadPolicy(pin_memory=True)" in inspect.getsource(transformer_impl)  # verl still asks for it
    with pytest.raises(RuntimeError):
        torch.empty(4).pin_memory()  # and pinning needs an accelerator
    policy = transformer_impl.CPUOffloadPolicy(pin_memory=True)
    assert type(policy).__name__ == "CPUOffloadPolicy" and policy.pin_memory is False
