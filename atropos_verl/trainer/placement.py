# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Where verl's rollout servers run: on the training workers' devices (`shared`) or on their own (`standalone`).

`shared` is verl's hybrid placement: each server lives beside a training worker and takes its weights in place
(checkpoint engine `naive`). `standalone` (asynchronous mode only) starts verl's replicas in `RolloutMode.STANDALONE`
on resource pools of their own (`actor_rollout_ref.rollout.nnodes` x `n_gpus_per_node`), so generation never
competes with the update for a device; after every update actor rank 0 pushes the weights through verl's checkpoint
engine (`nccl` on GPUs, `gloo` on the CPU platform) and the push is drained, not aborted
(`drain.checkpoint_manager`).

verl 0.9.1's `RayPPOTrainer` only builds servers beside its workers (it passes the actor worker group to
`LLMServerManager.create`); standalone placement passes none, which is verl's own standalone path
(`LLMServerManager._initialize_llm_servers` -> `RolloutReplica.init_standalone`).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, OmegaConf

from atropos_verl.hydra_overrides import override_key

SHARED, STANDALONE = "shared", "standalone"
PLACEMENTS = (SHARED, STANDALONE)
GLOO_MODULE = "atropos_verl.platform.gloo_checkpoint_engine"
#: `drain.checkpoint_manager.FQN`, spelled out so that config checks import nothing of verl's.
DRAINED_MANAGER = "atropos_verl.trainer.drain.checkpoint_manager.DrainedCheckpointManager"
_MANAGER_MODULE = "verl.trainer.ppo.ray_trainer"

ROLLOUT = "actor_rollout_ref.rollout"


def placement_of(config: Any) -> str:
    return str(OmegaConf.select(config, "atropos.placement", default=SHARED) or SHARED)


def standalone_defaults(*, cpu_platform: bool) -> dict[str, Any]:
    """verl settings standalone placement needs unless the user set them (keys relative to the config root)."""
    return {
        f"{ROLLOUT}.nnodes": 1,
        f"{ROLLOUT}.checkpoint_engine.backend": "gloo" if cpu_platform else "nccl",
        f"{ROLLOUT}.checkpoint_manager_class": DRAINED_MANAGER,
    }


def apply_standalone_defaults(config: DictConfig, user_overrides: list[str], *, cpu_platform: bool) -> None:
    """Fill in `standalone_defaults` for keys the user did not override; load the gloo backend where it is used."""
    if placement_of(config) != STANDALONE:
        return
    set_by_user = {override_key(o) for o in user_overrides}
    for key, value in standalone_defaults(cpu_platform=cpu_platform).items():
        if key == f"{ROLLOUT}.nnodes" and OmegaConf.select(config, key):
            continue  # a rollout node count in the config itself is the user's choice too
        if key not in set_by_user:
            OmegaConf.update(config, key, value, merge=True, force_add=True)
    backend_module = f"{ROLLOUT}.checkpoint_engine.custom_backend_module"
    if OmegaConf.select(config, f"{ROLLOUT}.checkpoint_engine.backend") == "gloo" and not OmegaConf.select(
        config, backend_module
    ):
        OmegaConf.update(config, backend_module, GLOO_MODULE, merge=True, force_add=True)


def rollout_ranks(config: Any) -> int:
    """Devices (logical ranks on the CPU platform) the standalone replicas take; 0 when the servers are shared."""
    if placement_of(config) != STANDALONE:
        return 0
    rollout = OmegaConf.select(config, ROLLOUT)
    return int(rollout.nnodes) * int(rollout.n_gpus_per_node)


def placement_problems(config: Any) -> list[str]:
    placement = placement_of(config)
    if placement not in PLACEMENTS:
        return [f"atropos.placement={placement!r}: use one of {', '.join(PLACEMENTS)}"]
    if placement != STANDALONE:
        return []
    if OmegaConf.select(config, "atropos.mode") != "async":  # the settings below are async mode's defaults
        return [
            "atropos.placement=standalone needs atropos.mode=async: servers on their own devices exist to keep "
            "generating while the actor updates"
        ]
    problems = []
    backend = OmegaConf.select(config, f"{ROLLOUT}.checkpoint_engine.backend")
    if backend == "naive":
        problems.append(
            f"atropos.placement=standalone: {ROLLOUT}.checkpoint_engine.backend=naive only reaches servers beside "
            "the actor; use nccl (GPUs) or gloo (CPU)"
        )
    if OmegaConf.select(config, f"{ROLLOUT}.checkpoint_manager_class") != DRAINED_MANAGER:
        problems.append(
            f"atropos.placement=standalone needs {ROLLOUT}.checkpoint_manager_class={DRAINED_MANAGER}: verl's own "
            "manager aborts every request before a push, and the environments would score the aborted completions"
        )
    nodes, per_node = (OmegaConf.select(config, f"{ROLLOUT}.{k}") for k in ("nnodes", "n_gpus_per_node"))
    if not nodes or not per_node or int(nodes) * int(per_node) <= 0:
        problems.append(f"atropos.placement=standalone needs {ROLLOUT}.nnodes and n_gpus_per_node > 0")
    return problems


@contextlib.contextmanager
def standalone_servers(enabled: bool) -> Iterator[None]:
    """While verl's `init_workers` runs, build the rollout servers without the actor worker group (standalone)."""
    if not enabled:
        yield
        return
    module = importlib.import_module(_MANAGER_MODULE)
    current = module.LLMServerManager

    class StandaloneServers(current):
        """verl's server manager (whatever `init_workers` would use) given no worker group to colocate with."""

        @classmethod
        def create(cls, *args: Any, **kwargs: Any) -> Any:
            kwargs.update(worker_group=None, rollout_resource_pool=None)
            return super().create(*args, **kwargs)

    module.LLMServerManager = StandaloneServers
    try:
        yield
    finally:
        module.LLMServerManager = current
