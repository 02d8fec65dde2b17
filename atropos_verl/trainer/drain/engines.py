# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Drained pause of one inference engine: requests already running finish, new ones wait inside the server.

Environments talk to verl's servers over HTTP, outside verl's own admission gate (`_park_until_admitted` covers only
verl's Ray `generate` path). verl's hybrid cycle would sleep the engines under that traffic, and a vLLM sleep aborts
whatever is running: the env then receives HTTP 200 with `finish_reason: "abort"` and a truncated completion that was
partly sampled by the old weights. Pausing with a drain before the sleep removes both.

- vLLM: `AsyncLLM.pause_generation(mode="wait")` (`wait_for_inflight_requests=True` before the `mode` argument
  existed) stops scheduling new requests and returns when the running ones are done; requests arriving meanwhile are
  queued by the engine (`PauseState.PAUSED_NEW`, `vllm/v1/core/sched/scheduler.py` get_num_unfinished_requests).
- SGLang: the tokenizer manager's `is_pause` flag parks new requests in `generate_request` before they reach the
  scheduler; the running ones finish and leave `rid_to_state`. `pause_generation(mode="in_place"|"retract")` would
  freeze or re-queue the running ones instead, which is exactly what must not happen.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any


def _accepts(fn: Any, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def vllm_in_flight(engine: Any) -> int:
    """Requests the vLLM front-end still tracks (running plus queued)."""
    states = getattr(getattr(engine, "output_processor", None), "request_states", None)
    return len(states) if states is not None else 0


def vllm_sleep_keeps_queue(engine: Any) -> bool:
    """Whether `AsyncLLM.sleep` can keep queued requests (`mode="keep"`) instead of aborting everything."""
    return _accepts(engine.sleep, "mode")


async def drain_vllm(engine: Any, timeout: float) -> dict[str, Any]:
    """Pause a vLLM AsyncLLM after its running requests finish; give up after `timeout` s (engine stays paused)."""
    start = time.monotonic()
    before = vllm_in_flight(engine)
    kwargs: dict[str, Any] = (
        {"mode": "wait"} if _accepts(engine.pause_generation, "mode") else {"wait_for_inflight_requests": True}
    )
    try:
        await asyncio.wait_for(engine.pause_generation(clear_cache=False, **kwargs), timeout)
        drained = True
    except TimeoutError:
        drained = False
    return {
        "drained": drained,
        "in_flight": before,
        "left": 0 if drained else vllm_in_flight(engine),
        "seconds": time.monotonic() - start,
    }


async def drain_sglang(tokenizer_manager: Any, timeout: float, *, poll: float = 0.05) -> dict[str, Any]:
    """Park new SGLang requests in the tokenizer manager and wait until the running ones have left."""
    tm = tokenizer_manager
    for attr in ("is_pause_cond", "is_pause", "rid_to_state"):
        if not hasattr(tm, attr):
            raise RuntimeError(
                f"SGLang TokenizerManager has no '{attr}': this SGLang version does not park requests the way the "
                f"drained weight sync relies on (sglang/srt/managers/tokenizer_manager.py pause_generation)"
            )
    start = time.monotonic()
    async with tm.is_pause_cond:
        tm.is_pause = True
    before = len(tm.rid_to_state)
    deadline = start + timeout
    while tm.rid_to_state and time.monotonic() < deadline:
        await asyncio.sleep(poll)
    left = len(tm.rid_to_state)
    return {"drained": left == 0, "in_flight": before, "left": left, "seconds": time.monotonic() - start}
