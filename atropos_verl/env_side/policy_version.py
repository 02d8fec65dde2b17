# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Stamp each posted group with the policy version that generated it, read from the rollout servers' answers.

verl's vLLM servers put the version they serve on every answer (`trainer.drain.policy_stamp`, header
`wire.POLICY_VERSION_HEADER`). Environments reach them through atroposlib's server classes, which use the OpenAI SDK
(httpx, or its fork httpx2 in recent SDKs) or aiohttp; each client is hooked where a response's headers arrive, so
every environment is covered without knowing which class or call it uses. The versions seen by a rollout task
(`rollout_task`) are written into `generation_params[wire.POLICY_VERSION_KEY]` of the groups it posts: the oldest
one, so a group that mixed versions counts as stale as its stalest completion. The trainer turns it into each
sequence's lag and bounds it.
"""

from __future__ import annotations

import importlib
from typing import Any

from atropos_verl.env_side import rollout_task
from atropos_verl.env_side.patching import wrap_method
from atropos_verl.wire import POLICY_VERSION_HEADER, POLICY_VERSION_KEY


def record(headers: Any) -> None:
    """Note the version on one response's headers in the current rollout task (if it carries one)."""
    task = rollout_task.current()
    if task is None or headers is None:
        return
    value = headers.get(POLICY_VERSION_HEADER)
    if value is None:
        return
    try:
        task.policy_versions.append(int(value))
    except ValueError:
        pass  # not one of our servers' stamps; nothing to learn from it


def stamp(group: dict[str, Any], task: rollout_task.TaskRecord, env: Any = None) -> None:
    if not task.policy_versions:
        return
    params = dict(group.get("generation_params") or {})
    params[POLICY_VERSION_KEY] = min(task.policy_versions)
    group["generation_params"] = params


#: httpx-style async clients whose `send` returns the response; the OpenAI SDK's transport is one of them.
HTTPX_CLIENTS = (("httpx", "AsyncClient"), ("httpx2", "AsyncClient"))


def install() -> None:
    import aiohttp

    def make_recording(call):
        """httpx `send` and aiohttp `_request` both return the response once its headers have arrived."""

        async def wrapper(self, *args, **kwargs):
            response = await call(self, *args, **kwargs)
            record(response.headers)
            return response

        return wrapper

    rollout_task.install()
    rollout_task.add_stamper(stamp)
    for module_name, class_name in HTTPX_CLIENTS:
        try:
            client_cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):
            continue
        wrap_method(client_cls, "send", make_recording)
    wrap_method(aiohttp.ClientSession, "_request", make_recording)
