# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""`python -m atropos_verl.trainer.main [hydra overrides]`: GRPO on Atropos groups with verl-owned servers.

The config is verl's `ppo_trainer` plus `atropos:` (config/atropos_defaults.yaml), so any verl override works as in
verl's own examples. Workers and roles are verl's (`main_ppo_v0.BaseTaskRunner`: `ActorRolloutRefWorker`, reference
policy fused in when KL is used, LoRA's reference = the base model). The trainer runs in this process, which owns the
Ray cluster it starts and shuts it down on exit.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from atropos_verl.start_gate import await_gate

from .config_check import check_config
from .old_log_probs import route_bypass_loss
from .placement import rollout_ranks
from .reject_ceiling import NothingToLearnError
from .serving import apply_mode_defaults, apply_serving_defaults

logger = logging.getLogger(__name__)


def _user_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:  # composed outside @hydra.main (tests, notebooks)
        return []


def prepare_config(config: DictConfig, user_overrides: list[str] | None = None) -> DictConfig:
    """Apply the CPU platform's required values when it is active and the mode's defaults, resolve, and check."""
    from atropos_verl.platform import is_active

    overrides = user_overrides if user_overrides is not None else _user_overrides()
    if is_active():
        from atropos_verl.platform.defaults import apply_cpu_defaults

        apply_cpu_defaults(config, overrides)
    apply_mode_defaults(config, overrides, cpu_platform=is_active())
    apply_serving_defaults(config, overrides)
    OmegaConf.resolve(config)
    route_bypass_loss(config)
    from verl.trainer.ppo.utils import need_reference_policy

    check_config(config, use_reference_policy=need_reference_policy(config))
    return config


def _server_key_env(config: DictConfig) -> dict[str, str]:
    """The launcher's per-run server key (`atropos_verl.server_key`) handed on to the servers verl starts.

    vLLM reads it from the environment of its server process, a Ray actor possibly on another node: it travels in the
    job's runtime_env (returned here). SGLang's server actor reads it from there too, for the key guard on verl's app
    (`drain.sglang_replica`), and takes it as a server argument (`engine_kwargs.sglang.api_key`, which verl forwards
    to `ServerArgs`) for SGLang's own start-up requests to itself; set in the config here, it is masked in what the
    trackers log (`ray_trainer._tracker`).
    """
    from atropos_verl.server_key import VLLM_KEY_ENV, from_environment

    key = from_environment()
    if key is None:
        return {}
    os.environ[VLLM_KEY_ENV] = key
    if config.actor_rollout_ref.rollout.name == "sglang":
        with open_dict(config):
            config.actor_rollout_ref.rollout.setdefault("engine_kwargs", {}).setdefault("sglang", {})["api_key"] = key
    return {VLLM_KEY_ENV: key}


def _start_ray(config: DictConfig) -> Any:
    """Start Ray: the CPU platform's private cluster, or verl's own `ray.init` arguments (`ray_kwargs.ray_init`)."""
    import ray

    from atropos_verl.platform import is_active

    env_vars = _server_key_env(config)
    if ray.is_initialized():
        return None
    from .loopback import bind_loopback, single_node

    if single_node(config):
        bind_loopback()
    if is_active():
        from atropos_verl.platform.ray_cluster import logical_cpus_needed, start_ray

        ranks = int(config.trainer.n_gpus_per_node) * int(config.trainer.nnodes) + rollout_ranks(config)
        return start_ray(num_cpus=max(logical_cpus_needed(ranks), os.cpu_count() or 1), env_vars=env_vars)
    from verl.trainer.constants_ppo import get_ppo_ray_runtime_env

    ray_init = config.ray_kwargs.get("ray_init", {})
    runtime_env = OmegaConf.merge(
        get_ppo_ray_runtime_env(config), ray_init.get("runtime_env", {}), {"env_vars": env_vars}
    )
    kwargs = OmegaConf.to_container(OmegaConf.create({**ray_init, "runtime_env": runtime_env}))
    ray.init(**kwargs)
    return None


def build_trainer(config: DictConfig):
    """The trainer with verl's role mapping and resource pools (as `verl/trainer/main_ppo_v0.py` builds them)."""
    from verl.single_controller.ray import RayWorkerGroup  # noqa: F401  (imported by verl's mapping below)
    from verl.trainer.main_ppo_v0 import BaseTaskRunner
    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.config import HFModelConfig

    from .ray_trainer import AtroposRayTrainer

    roles = BaseTaskRunner()
    _, worker_group_cls = roles.add_actor_rollout_worker(config)
    model_config: HFModelConfig = omega_conf_to_dataclass(config.actor_rollout_ref.model)
    return AtroposRayTrainer(
        config=config,
        tokenizer=model_config.tokenizer,
        processor=model_config.processor,
        role_worker_mapping=roles.role_worker_mapping,
        resource_pool_manager=roles.init_resource_pool_mgr(config),
        ray_worker_group_cls=worker_group_cls,
    )


def _exit_on_sigterm() -> None:
    """Turn SIGTERM (how the launcher stops us) into SystemExit, so the Ray cluster we started is shut down cleanly
    (its temp dir and vLLM's shared-memory segments removed) instead of being killed from outside."""
    import signal

    def handler(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def run(config: DictConfig, user_overrides: list[str] | None = None) -> None:
    from atropos_verl import startup_times

    run_dir = OmegaConf.select(config, "atropos.run_dir")
    startup_times.record(run_dir, "trainer", "imported")
    prepare_config(config, user_overrides)  # imports verl and torch
    startup_times.record(run_dir, "trainer", "config_ready")
    _exit_on_sigterm()
    await_gate()  # the launcher's import check of the environments ran alongside the imports above
    startup_times.record(run_dir, "trainer", "start_gate")
    cluster = _start_ray(config)
    startup_times.record(run_dir, "trainer", "ray_ready")
    try:
        trainer = build_trainer(config)
        trainer.init_workers()
        startup_times.record(run_dir, "trainer", "workers_ready")
        trainer.fit()
    except NothingToLearnError as exc:
        raise SystemExit(f"NothingToLearnError: {exc}") from None
    finally:
        if cluster is not None:
            cluster.shutdown()
        else:
            import ray

            if ray.is_initialized():
                ray.shutdown()


@hydra.main(config_path="config", config_name="atropos_trainer", version_base=None)
def main(config: DictConfig) -> None:
    run(config)


if __name__ == "__main__":
    main()
