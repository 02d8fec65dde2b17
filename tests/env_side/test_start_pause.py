# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""atroposlib's 5 s pause after registering, run through the real `BaseEnv.env_manager` up to its first status check."""

from __future__ import annotations

import asyncio

import pytest
from atroposlib.envs import base
from atroposlib.envs.base import BaseEnv

from atropos_verl.env_side import start_pause


class FirstStatusCheck(Exception):
    """env_manager got past its start-up and asked the API for its status."""


class StartingEnv(BaseEnv):
    """Everything env_manager calls before its loop is a no-op; the loop's first status check ends the test."""

    async def setup(self) -> None: ...

    async def setup_wandb(self) -> None: ...

    async def register_env(self) -> None: ...

    async def get_server_info(self) -> None: ...

    async def get_status(self) -> None:
        raise FirstStatusCheck

    async def get_next_item(self): ...

    async def evaluate(self, *args, **kwargs): ...

    async def elsewhere_in_base(self) -> None:
        """A 5 s sleep that is not env_manager's: left alone."""
        await base.asyncio.sleep(start_pause.START_PAUSE_S)


def sleeps_of(coro_factory, monkeypatch) -> list[float]:
    """The delays asyncio.sleep was called with while `coro_factory()` ran (without sleeping them)."""
    delays: list[float] = []
    real_sleep = asyncio.sleep

    def recording_sleep(delay, result=None):
        delays.append(delay)
        return real_sleep(0, result)

    monkeypatch.setattr(asyncio, "sleep", recording_sleep)

    async def run() -> None:
        with pytest.raises(FirstStatusCheck):
            await coro_factory()

    asyncio.run(run())
    monkeypatch.setattr(asyncio, "sleep", real_sleep)
    return delays


def starting_env() -> StartingEnv:
    env = object.__new__(StartingEnv)
    env.last_loop_time = None
    env.mainloop_timings = []
    return env


@pytest.fixture
def installed(monkeypatch):
    monkeypatch.setenv(start_pause.ENV_PROCESSES_ENV, "1")
    start_pause.install()
    start_pause.install()  # idempotent
    yield
    start_pause.uninstall()
    assert base.asyncio is asyncio


def test_atroposlib_pauses_5_s_after_registering(monkeypatch):
    start_pause.uninstall()
    assert sleeps_of(starting_env().env_manager, monkeypatch) == [start_pause.START_PAUSE_S]


def test_the_only_environment_process_starts_without_the_pause(installed, monkeypatch):
    assert sleeps_of(starting_env().env_manager, monkeypatch) == [0]
    # asyncio itself, and every other name atroposlib's module uses from it, are unchanged.
    assert asyncio.sleep is not base.asyncio.sleep and base.asyncio.gather is asyncio.gather

    async def other_sleep() -> None:
        await starting_env().elsewhere_in_base()
        raise FirstStatusCheck

    assert sleeps_of(other_sleep, monkeypatch) == [start_pause.START_PAUSE_S]


@pytest.mark.parametrize("processes", [None, "2"])
def test_the_pause_stays_where_other_environments_may_register(processes, monkeypatch):
    start_pause.uninstall()
    if processes is None:
        monkeypatch.delenv(start_pause.ENV_PROCESSES_ENV, raising=False)
    else:
        monkeypatch.setenv(start_pause.ENV_PROCESSES_ENV, processes)
    start_pause.install()
    assert base.asyncio is asyncio
    assert sleeps_of(starting_env().env_manager, monkeypatch) == [start_pause.START_PAUSE_S]
