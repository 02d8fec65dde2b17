# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""verl's generation-side actors that an Atropos run never calls are not started.

Besides the actor workers and the rollout servers, verl's `RayPPOTrainer.init_workers` starts a reward-loop worker,
an agent-loop worker and the servers' request load balancer: three Ray actor processes, each importing verl (about
9 s of CPU on a 2-core machine, during the first batch) and holding a few hundred MB. In an Atropos run the
environments generate and score over HTTP, so verl's generate path (`async_rollout_manager.generate_sequences`), its
reward loop (`reward_loop_manager.compute_rm_score`) and the load balancer (used only by that path's client) are never
called. While `init_workers` runs, the classes it builds them from are rebound to stand-ins that start nothing and say
so if anything calls them. Runs that do use them (a reward model, distillation from a teacher, a custom agent-loop
manager) keep verl's classes.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from typing import Any

from omegaconf import OmegaConf
from verl.workers.rollout.llm_server import LLMServerManager

WHY = "environments generate and score over HTTP in an Atropos run"


class _NotStarted:
    """Any attribute verl's own code never reads in an Atropos run fails with a message naming what is missing."""

    role = ""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"verl's {self.role} is not started ({WHY}); {self.role}.{name} is unavailable")


class NoAgentLoop(_NotStarted):
    """Stands in for verl's `AgentLoopManager`: no agent-loop workers."""

    role = "AgentLoopManager"

    @classmethod
    def create(cls, *args: Any, **kwargs: Any) -> NoAgentLoop:
        return cls()


class NoRewardLoop(_NotStarted):
    """Stands in for verl's `RewardLoopManager`: no reward-loop workers."""

    role = "RewardLoopManager"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.reward_loop_workers: list[Any] = []


class ServersWithoutBalancer(LLMServerManager):
    """verl's server manager without the load-balancer actor; `get_client()` then routes nowhere, and nothing asks."""

    async def _init_global_load_balancer(self) -> None:
        self.global_load_balancer = None


# (module, global) rebound while init_workers runs; init_workers imports the first two inside the method.
_STAND_INS = (
    ("verl.experimental.agent_loop", "AgentLoopManager", NoAgentLoop),
    ("verl.experimental.reward_loop", "RewardLoopManager", NoRewardLoop),
    ("verl.trainer.ppo.ray_trainer", "LLMServerManager", ServersWithoutBalancer),
)


def unused(trainer: Any) -> bool:
    """Whether this run leaves verl's generate path, reward loop and load balancer unused."""
    rollout = trainer.config.actor_rollout_ref.rollout
    custom_manager = OmegaConf.select(rollout, "agent.agent_loop_manager_class", default=None)
    return not (trainer.use_rm or trainer.use_teacher_policy or custom_manager)


@contextlib.contextmanager
def not_started(trainer: Any) -> Iterator[bool]:
    """Rebind verl's agent-loop, reward-loop and server-manager classes for the block (restored after); yields
    whether it did."""
    if not unused(trainer):
        yield False
        return
    saved = []
    try:
        for module_name, name, stand_in in _STAND_INS:
            module = importlib.import_module(module_name)
            saved.append((module, name, getattr(module, name)))
            setattr(module, name, stand_in)
        yield True
    finally:
        for module, name, original in reversed(saved):
            setattr(module, name, original)
