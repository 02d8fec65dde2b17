# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Drained pause of one inference engine: requests already running finish, new ones wait inside the server.

Environments talk to verl's servers over HTTP, outside verl's own admission gate (`_park_until_admitted` covers only
verl's Ray `generate` path). verl's hybrid cycle would sleep the engines under that traffic, and a vLLM sleep aborts
whatever is running: the env then receives HTTP 200 with `finish_reason: "abort"` and a truncated completion that was
partly sampled by the old weights. Pausing with a drain before the sleep removes both.

- vLLM: the engine core's `pause_scheduler(mode="wait")` stops scheduling new requests and returns when the running
  ones are done; requests arriving meanwhile are queued by the engine (`PauseState.PAUSED_NEW`,
  `vllm/v1/core/sched/scheduler.py` get_num_unfinished_requests). `AsyncLLM.pause_generation` makes the same call and
  then sleeps a fixed 20 ms so the front end hands on the last outputs first (for ordering, not correctness, by its
  own comment): with nothing running that is 20 ms of every hybrid step for nothing. The drain calls the engine core
  itself and waits only while requests that were tracked when it began are still being handed on, at most those
  20 ms. vLLM without that call (before `mode` existed) gets `pause_generation(wait_for_inflight_requests=True)`.
- SGLang: the tokenizer manager's `is_pause` flag parks new requests in `generate_request` before they reach the
  scheduler. A request counts as running while it holds the reader side of `model_update_lock`, taken after the
  pause check; the drain waits until no reader is left. `rid_to_state` cannot tell: a request is registered there
  (`_init_req_state`) before it parks, so parked requests, atroposlib's one-per-second health completions among them,
  would keep it non-empty for ever. SGLang's own `pause_generation(mode="abort")` decides "still running" by the same
  lock; `mode="in_place"|"retract"` would freeze or re-queue the running ones instead, which must not happen.
  (tests/contracts/test_sglang_contract.py reads these facts from the pinned SGLang release.)
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


def _request_states(engine: Any) -> dict[str, Any]:
    """The vLLM front end's requests by id (running plus queued)."""
    states = getattr(getattr(engine, "output_processor", None), "request_states", None)
    return states if states is not None else {}


def vllm_in_flight(engine: Any) -> int:
    """Requests the vLLM front-end still tracks (running plus queued)."""
    return len(_request_states(engine))


def vllm_sleep_keeps_queue(engine: Any) -> bool:
    """Whether `AsyncLLM.sleep` can keep queued requests (`mode="keep"`) instead of aborting everything."""
    return _accepts(engine.sleep, "mode")


#: vLLM's own wait after a pause for the front end to hand on the last outputs (`AsyncLLM.pause_generation`).
OUTPUT_GRACE_S = 0.02


async def _pause_vllm(engine: Any, tracked: frozenset[str]) -> None:
    """Pause in wait mode; then let the front end hand on what the requests in `tracked` still have to send."""
    has_mode = _accepts(engine.pause_generation, "mode")
    core_pause = getattr(getattr(engine, "engine_core", None), "pause_scheduler_async", None)
    if core_pause is None or not has_mode:
        await engine.pause_generation(clear_cache=False, **({"mode": "wait"} if has_mode else
                                                            {"wait_for_inflight_requests": True}))
        return
    await core_pause(mode="wait", clear_cache=False)
    deadline = time.monotonic() + OUTPUT_GRACE_S
    while tracked and time.monotonic() < deadline:
        states = _request_states(engine)
        if not any(request_id in states for request_id in tracked):
            return
        await asyncio.sleep(0.001)


async def drain_vllm(engine: Any, timeout: float) -> dict[str, Any]:
    """Pause a vLLM AsyncLLM after its running requests finish; give up after `timeout` s (engine stays paused)."""
    start = time.monotonic()
    tracked = frozenset(_request_states(engine))
    try:
        await asyncio.wait_for(_pause_vllm(engine, tracked), timeout)
        drained = True
    except TimeoutError:
        drained = False
    return {
        "drained": drained,
        "in_flight": len(tracked),
        "left": 0 if drained else vllm_in_flight(engine),
        "seconds": time.monotonic() - start,
    }


#: A request between the pause check and the reader lock is not counted yet: "none running" must hold this long.
SGLANG_SETTLE_S = 0.01


def sglang_running(tokenizer_manager: Any) -> int:
    """Requests holding the reader side of SGLang's `model_update_lock` (past the pause check, not yet finished)."""
    return int(getattr(tokenizer_manager.model_update_lock, "_readers", 0))


async def drain_sglang(tokenizer_manager: Any, timeout: float, *, poll: float = 0.05) -> dict[str, Any]:
    """Park new SGLang requests in the tokenizer manager and wait until the running ones have finished."""
    tm = tokenizer_manager
    for attr in ("is_pause_cond", "is_pause", "model_update_lock"):
        if not hasattr(tm, attr):
            raise RuntimeError(
                f"SGLang TokenizerManager has no '{attr}': this SGLang version does not park requests the way the "
                f"drained weight sync relies on (sglang/srt/managers/tokenizer_manager.py generate_request)"
            )
    lock = tm.model_update_lock
    start = time.monotonic()
    async with tm.is_pause_cond:
        tm.is_pause = True
    before = sglang_running(tm)
    deadline = start + timeout
    idle_since: float | None = None
    while time.monotonic() < deadline:
        now = time.monotonic()
        if await lock.is_locked():
            idle_since = None
        elif idle_since is None:
            idle_since = now
        elif now - idle_since >= SGLANG_SETTLE_S:
            break
        await asyncio.sleep(min(poll, SGLANG_SETTLE_S) if idle_since is not None else poll)
    left = sglang_running(tm)
    drained = idle_since is not None and left == 0 and not await lock.is_locked()
    return {"drained": drained, "in_flight": before, "left": left, "seconds": time.monotonic() - start}
