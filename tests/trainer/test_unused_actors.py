# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""verl's agent loop, reward loop and load balancer are not started in an Atropos run, and only there.

That the trainer really starts none of their processes is checked on a real run in tests/e2e/test_trainer_e2e.py."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from atropos_verl.trainer.unused_actors import NoAgentLoop, NoRewardLoop, ServersWithoutBalancer, not_started

NAMES = (("verl.experimental.agent_loop", "AgentLoopManager"), ("verl.experimental.reward_loop", "RewardLoopManager"),
         ("verl.trainer.ppo.ray_trainer", "LLMServerManager"))  # fmt: skip


def _trainer(*, use_rm=False, use_teacher_policy=False, manager=None):
    agent = {"num_workers": 1} | ({"agent_loop_manager_class": manager} if manager else {})
    config = OmegaConf.create({"actor_rollout_ref": {"rollout": {"agent": agent}}})
    return SimpleNamespace(config=config, use_rm=use_rm, use_teacher_policy=use_teacher_policy)


def _bound() -> list[type]:
    return [getattr(importlib.import_module(module), name) for module, name in NAMES]


def test_init_workers_sees_the_stand_ins_then_verls_classes_again():
    original = _bound()
    with not_started(_trainer()) as replaced:
        assert replaced
        # what init_workers' own imports resolve to while it runs
        from verl.experimental.agent_loop import AgentLoopManager
        from verl.experimental.reward_loop import RewardLoopManager

        assert AgentLoopManager is NoAgentLoop and RewardLoopManager is NoRewardLoop
        assert _bound() == [NoAgentLoop, NoRewardLoop, ServersWithoutBalancer]
    assert _bound() == original
    with pytest.raises(RuntimeError), not_started(_trainer()):
        raise RuntimeError("init_workers failed")
    assert _bound() == original  # restored on errors too


@pytest.mark.parametrize("kind", ["reward model", "teacher", "custom agent loop"])
def test_runs_that_use_them_keep_verls_classes(kind):
    trainer = {"reward model": _trainer(use_rm=True), "teacher": _trainer(use_teacher_policy=True),
               "custom agent loop": _trainer(manager="my_pkg.loops.MyManager")}[kind]  # fmt: skip
    original = _bound()
    with not_started(trainer) as replaced:
        assert not replaced and _bound() == original


def test_stand_ins_say_what_is_missing():
    loop = NoAgentLoop.create(config=None, llm_client=None, reward_loop_worker_handles=None)
    with pytest.raises(AttributeError, match=r"AgentLoopManager is not started .*generate_sequences is unavailable"):
        loop.generate_sequences(None)
    rewards = NoRewardLoop(config=None, rm_resource_pool=None)
    assert rewards.reward_loop_workers == []  # what init_workers reads from it
    with pytest.raises(AttributeError, match="RewardLoopManager.compute_rm_score"):
        rewards.compute_rm_score(None)
    assert not hasattr(loop, "__wrapped__")  # introspection gets a plain AttributeError
