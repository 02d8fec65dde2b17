# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""atroposlib's pause after an environment registers, kept only where another environment process can register.

`BaseEnv.env_manager` registers with the API and then sleeps a fixed 5 s ("wait for other instances to get set up")
before its first status check and its first rollout. A run's first batch waits for it, and so does every restarted
environment. The launcher knows how many environment processes a run has and tells each one (`ENV_PROCESSES_ENV`):
with one there is no other instance to wait for, and that one call returns at once. With more, or when started by
hand, atroposlib's pause stays as it is.

The sleep is a call inside `env_manager`, not a method, so `install()` rebinds the `asyncio` name of
`atroposlib.envs.base` to a module that is asyncio except for `sleep`, which skips exactly that call: 5 s, awaited
directly by `BaseEnv.env_manager` itself. Every other sleep in that module, and asyncio everywhere else, is unchanged.
"""

from __future__ import annotations

import asyncio
import os
import sys
import types
from typing import Any

from .patching import original

#: How many environment processes the run started (set by the launcher for each of them).
ENV_PROCESSES_ENV = "ATROPOS_VERL_ENV_PROCESSES"
#: atroposlib's pause (`atroposlib/envs/base.py` env_manager: `await asyncio.sleep(5)`).
START_PAUSE_S = 5


class _AsyncioWithoutStartPause(types.ModuleType):
    """`asyncio` for `atroposlib.envs.base`: every name is asyncio's, and `sleep` skips env_manager's start pause."""

    def __init__(self, env_manager_code: types.CodeType) -> None:
        super().__init__("asyncio")
        self._env_manager_code = env_manager_code

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    def sleep(self, delay: float, result: Any = None) -> Any:
        if delay == START_PAUSE_S and sys._getframe(1).f_code is self._env_manager_code:
            delay = 0
        return asyncio.sleep(delay, result)


def single_process() -> bool:
    """Whether the launcher started this environment as the run's only environment process."""
    return os.environ.get(ENV_PROCESSES_ENV) == "1"


def install() -> None:
    """Skip the start pause when this is the run's only environment process (idempotent)."""
    from atroposlib.envs import base

    if not single_process() or isinstance(base.asyncio, _AsyncioWithoutStartPause):
        return
    base.asyncio = _AsyncioWithoutStartPause(original(base.BaseEnv, "env_manager").__code__)


def uninstall() -> None:
    from atroposlib.envs import base

    if isinstance(base.asyncio, _AsyncioWithoutStartPause):
        base.asyncio = asyncio
