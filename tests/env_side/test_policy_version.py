# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The environment side reads the servers' policy version off real HTTP answers, whichever client the environment's
server class uses, and writes the oldest one of a rollout task into the groups it posts."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import aiohttp
import httpx
import openai
import pytest
import uvicorn

from atropos_verl.env_side import policy_version, rollout_task
from atropos_verl.trainer.drain import policy_stamp
from atropos_verl.wire import POLICY_VERSION_KEY
from tests.trainer.test_policy_stamp import stamped_app


@pytest.fixture(scope="module")
def server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(stamped_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def test_both_http_clients_record_the_served_version(server, monkeypatch):
    policy_version.install()
    monkeypatch.setattr(policy_stamp, "_STATE", {"version": None, "answered": 0, "completion_tokens": 0, "aborted": 0})

    async def rollout() -> rollout_task.TaskRecord:
        token = rollout_task._current.set(rollout_task.TaskRecord())
        try:
            policy_stamp.set_version(3)
            async with httpx.AsyncClient() as client:
                await client.post(f"{server}/v1/completions", json={})
            policy_stamp.set_version(2)
            sdk = openai.AsyncOpenAI(base_url=f"{server}/v1", api_key="x")  # atroposlib's OpenAIServer and chat calls
            await sdk.completions.create(model="m", prompt="x")

            async def child() -> None:  # asyncio.gather children share the task's record
                policy_stamp.set_version(4)
                async with aiohttp.ClientSession() as session, session.post(f"{server}/v1/completions", json={}):
                    pass

            await asyncio.gather(child())
            return rollout_task.current()
        finally:
            rollout_task._current.reset(token)

    record = asyncio.run(rollout())
    assert record.policy_versions == [3, 2, 4]

    async def outside_a_rollout() -> None:  # evaluation and health checks are no rollout: nothing recorded
        async with httpx.AsyncClient() as client:
            await client.get(f"{server}/health")

    asyncio.run(outside_a_rollout())


def test_groups_carry_the_oldest_version_their_task_saw():
    group = {"tokens": [[1]], "generation_params": {"temperature": 0.7}}
    policy_version.stamp(group, rollout_task.TaskRecord(policy_versions=[5, 4, 5]))
    assert group["generation_params"] == {"temperature": 0.7, POLICY_VERSION_KEY: 4}
    untouched = {"tokens": [[1]]}
    policy_version.stamp(untouched, rollout_task.TaskRecord())
    assert "generation_params" not in untouched  # servers that do not stamp: no claim
