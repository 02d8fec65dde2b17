# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""What one rollout task of an environment saw, written into the groups it posts.

Every server call an environment makes for a rollout runs inside `BaseEnv.handle_env`'s task (`collect_trajectories`,
then `handle_send_to_api`); child tasks (`asyncio.gather`) copy the task's context and so share its record. Modules
that need a per-rollout fact (the sampling temperature, the policy version that answered) append to the record while
the task runs and register a stamper that writes it into each group when the task posts.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from atropos_verl.env_side.patching import wrap_method


@dataclass
class TaskRecord:
    #: Temperatures requested for training rollouts (None = the server's default).
    temperatures: list[float | None] = field(default_factory=list)
    #: Policy versions the rollout servers stamped on their answers.
    policy_versions: list[int] = field(default_factory=list)
    #: Groups this task posted to the API, and why atroposlib dropped the others (`posting.drop_reason`).
    posted: int = 0
    drops: list[str] = field(default_factory=list)


_current: contextvars.ContextVar[TaskRecord | None] = contextvars.ContextVar("atropos_verl_task", default=None)

#: f(group, record, env) -> None, run on every dict group a task posts, in registration order.
Stamper = Callable[[dict[str, Any], TaskRecord, Any], None]
_STAMPERS: list[Stamper] = []
#: f(env, record) -> None, run when a rollout task has ended (its groups posted or not).
Finisher = Callable[[Any, TaskRecord], None]
_FINISHERS: list[Finisher] = []


def current() -> TaskRecord | None:
    """The record of the rollout task running now (None outside `handle_env`, e.g. evaluation)."""
    return _current.get()


def add_stamper(stamper: Stamper) -> None:
    if stamper not in _STAMPERS:
        _STAMPERS.append(stamper)


def add_finisher(finisher: Finisher) -> None:
    if finisher not in _FINISHERS:
        _FINISHERS.append(finisher)


def install() -> None:
    from atroposlib.envs.base import BaseEnv

    def make_handle_env(handle_env):
        async def wrapper(self, *args, **kwargs):
            record = TaskRecord()
            token = _current.set(record)
            try:
                return await handle_env(self, *args, **kwargs)
            finally:
                try:
                    _current.reset(token)
                except ValueError:  # the task is torn down outside its context (interpreter shutdown)
                    pass
                for finisher in _FINISHERS:
                    finisher(self, record)

        return wrapper

    def make_send(send):
        async def handle_send_to_api(self, scored_data, *args, **kwargs):
            record = _current.get()
            if record is not None:
                groups = scored_data if isinstance(scored_data, list) else [scored_data]
                for group in groups:
                    if isinstance(group, dict):
                        for stamper in _STAMPERS:
                            stamper(group, record, self)
            return await send(self, scored_data, *args, **kwargs)

        return handle_send_to_api

    wrap_method(BaseEnv, "handle_env", make_handle_env)
    wrap_method(BaseEnv, "handle_send_to_api", make_send)
