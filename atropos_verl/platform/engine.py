# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""FSDP engine fixes for device "cpu" (P1, P4)."""

from __future__ import annotations

from types import ModuleType

from atropos_verl.import_hooks import when_imported

TARGET = "verl.workers.engine.fsdp.transformer_impl"
_ENGINE_CLASSES = {"language_model": "FSDPEngineWithLMHead", "value_model": "FSDPEngineWithValueHead"}
_BACKENDS = ("fsdp", "fsdp2")


def register_cpu_engines(module: ModuleType) -> None:
    """P1: register verl's FSDP engines for device "cpu".

    `verl/workers/engine/fsdp/transformer_impl.py:1143` and `:1594` register them for `device=["cuda", "npu"]` only,
    so `EngineRegistry.get_engine_cls` (`verl/workers/engine/base.py:399-429`) raises
    `No engine registered for device='cpu'`. The engines themselves are device-agnostic.
    """
    from verl.workers.engine.base import EngineRegistry

    for model_type, cls_name in _ENGINE_CLASSES.items():
        registry = EngineRegistry._engines.get(model_type, {})
        backends = [b for b in _BACKENDS if "cpu" not in registry.get(b, {})]
        if backends:
            EngineRegistry.register(model_type=model_type, backend=backends, device="cpu")(getattr(module, cls_name))


class _UnpinnedCPUOffloadPolicy:
    """Callable standing in for `CPUOffloadPolicy` that never pins memory (P4).

    `transformer_impl.py:459-463` builds `CPUOffloadPolicy(pin_memory=True)` for forward-only engines (the reference
    model, log-prob passes); FSDP2 then calls `pin_memory()` (`torch/distributed/fsdp/_fully_shard/_fsdp_param.py`),
    which needs an accelerator: "Cannot access accelerator device when none is available".
    """

    def __init__(self, original: type) -> None:
        self.original = original

    def __call__(self, *args, **kwargs):
        kwargs["pin_memory"] = False
        return self.original(*args, **kwargs)


def unpin_offload_policy(module: ModuleType) -> None:
    """P4: make `transformer_impl.CPUOffloadPolicy(...)` build unpinned policies."""
    current = module.CPUOffloadPolicy
    if current is not None and not isinstance(current, _UnpinnedCPUOffloadPolicy):
        module.CPUOffloadPolicy = _UnpinnedCPUOffloadPolicy(current)


def _patch(module: ModuleType) -> None:
    register_cpu_engines(module)
    unpin_offload_policy(module)


def install() -> None:
    when_imported(TARGET, _patch)
