# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Standalone placement's config: the defaults it fills in (never over the user's), what it refuses, and the server
manager verl's `init_workers` uses while it is on."""

from __future__ import annotations

import importlib

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from atropos_verl.trainer.config_check import atropos_problems
from atropos_verl.trainer.placement import (
    DRAINED_MANAGER,
    GLOO_MODULE,
    apply_standalone_defaults,
    rollout_ranks,
    standalone_servers,
)

ROLLOUT = "actor_rollout_ref.rollout"


def composed(overrides: list[str], *, cpu: bool = True):
    with initialize_config_module(config_module="atropos_verl.trainer.config", version_base=None):
        cfg = compose(config_name="atropos_trainer", overrides=overrides)
    apply_standalone_defaults(cfg, overrides, cpu_platform=cpu)
    OmegaConf.resolve(cfg)
    return cfg


def test_the_default_is_shared_and_changes_nothing():
    cfg = composed(["atropos.mode=async"])
    assert cfg.atropos.placement == "shared"
    assert cfg.actor_rollout_ref.rollout.checkpoint_engine.backend == "naive"
    assert rollout_ranks(cfg) == 0
    assert not [p for p in atropos_problems(cfg) if "placement" in p]


@pytest.mark.parametrize(("cpu", "backend"), [(True, "gloo"), (False, "nccl")])
def test_standalone_fills_in_the_engine_the_manager_and_a_node(cpu, backend):
    cfg = composed(["atropos.mode=async", "atropos.placement=standalone", "trainer.n_gpus_per_node=2"], cpu=cpu)
    rollout = cfg.actor_rollout_ref.rollout
    assert rollout.checkpoint_engine.backend == backend
    assert rollout.checkpoint_manager_class == DRAINED_MANAGER
    assert (rollout.checkpoint_engine.custom_backend_module == GLOO_MODULE) == (backend == "gloo")
    assert rollout.nnodes == 1
    assert rollout_ranks(cfg) == 2  # verl's rollout.n_gpus_per_node follows the trainer's unless set
    assert not [p for p in atropos_problems(cfg) if "placement" in p]


def test_the_users_settings_are_kept():
    overrides = [
        "atropos.mode=async",
        "atropos.placement=standalone",
        f"{ROLLOUT}.nnodes=2",
        f"{ROLLOUT}.n_gpus_per_node=4",
        f"{ROLLOUT}.checkpoint_engine.backend=nixl",
    ]
    cfg = composed(overrides, cpu=False)
    assert cfg.actor_rollout_ref.rollout.checkpoint_engine.backend == "nixl"
    assert cfg.actor_rollout_ref.rollout.checkpoint_engine.custom_backend_module is None
    assert rollout_ranks(cfg) == 8


def test_verl_knows_the_manager_the_config_names():
    from verl.utils.import_utils import load_class_from_fqn

    from atropos_verl.trainer.drain.checkpoint_manager import FQN, DrainedCheckpointManager

    assert FQN == DRAINED_MANAGER
    assert load_class_from_fqn(DRAINED_MANAGER, "CheckpointEngineManager") is DrainedCheckpointManager


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["atropos.placement=standalone"], "needs atropos.mode=async"),
        (["atropos.mode=async", "atropos.placement=apart"], "use one of shared, standalone"),
        (["atropos.mode=async", "atropos.placement=standalone", f"{ROLLOUT}.checkpoint_engine.backend=naive"],
         "backend=naive only reaches servers beside the actor"),
        (["atropos.mode=async", "atropos.placement=standalone",
          f"{ROLLOUT}.checkpoint_manager_class=verl.checkpoint_engine.CheckpointEngineManager"],
         "aborts every request before a push"),
    ],
)
def test_refused_settings_name_the_key(overrides, needle):
    cfg = composed(overrides)
    problems = atropos_problems(cfg)
    assert any(needle in p for p in problems), problems


def test_servers_are_built_without_the_worker_group_only_inside_the_block():
    module = importlib.import_module("verl.trainer.ppo.ray_trainer")
    seen = {}

    class Recording(module.LLMServerManager):
        @classmethod
        def create(cls, *args, **kwargs):
            seen.update(kwargs)
            return cls

    original, module.LLMServerManager = module.LLMServerManager, Recording
    try:
        with standalone_servers(True):
            module.LLMServerManager.create(config=None, worker_group="actor wg", rollout_resource_pool="pool")
        assert seen == {"config": None, "worker_group": None, "rollout_resource_pool": None}
        assert module.LLMServerManager is Recording
        with standalone_servers(False):
            assert module.LLMServerManager is Recording
    finally:
        module.LLMServerManager = original
