# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Hybrid-mode control calls (weight sync, sleep, wake-up) with a deadline.

In hybrid mode the replicas are paused from `sleep_replicas()` until the next `update_weights()`. If the engine-side
receiver of a sync dies, verl's bucketed sender (`verl/workers/rollout/vllm_rollout/bucketed_weight_transfer.py`,
`async_send_weights`) waits on a ZMQ `recv()` with no timeout, and `CheckpointEngineManager.update_weights`
(`verl/checkpoint_engine/base.py:510-521`) blocks in `ray.get` forever. `call_with_timeout` turns that into an error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class RolloutTimeoutError(TimeoutError):
    """A hybrid-mode rollout control call (weight sync, sleep, wake-up) did not finish in time."""


def sync_hint(worker_extension: str | None) -> str:
    """What to check when a weight sync times out; names the engine worker extension the run configured."""
    extension = (
        f"that actor_rollout_ref.rollout.engine_kwargs.vllm.worker_extension_cls ({worker_extension}) loads; "
        if worker_extension
        else ""
    )
    return (
        "Check the inference server/worker logs in the Ray session directory (logs/worker-*.err) for the receiver's "
        f"exception (e.g. from update_weights_from_ipc / reload_weights); {extension}that every tensor fits in "
        "rollout.checkpoint_engine.update_weights_bucket_megabytes; and that /dev/shm has room for one bucket. "
        "The trainer-side sender is still blocked: shut the Ray cluster down."
    )


def call_with_timeout(fn: Callable[..., T], *args: Any, timeout_s: float, what: str, hint: str = "", **kwargs) -> T:
    """Run `fn(*args, **kwargs)` in a daemon thread; raise RolloutTimeoutError if it is not done in `timeout_s`.

    A thread rather than a signal: verl's `auto_await` methods spin their own event loop, and Ray calls cannot be
    interrupted from outside. On timeout the thread is left blocked; the caller is expected to shut Ray down.
    """
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = fn(*args, **kwargs)
        except BaseException as e:  # handed to the caller below
            result["error"] = e

    thread = threading.Thread(target=run, name=f"atropos-verl-{what}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise RolloutTimeoutError(f"{what} did not finish within {timeout_s:.0f} s. {hint}".strip())
    if "error" in result:
        raise result["error"]
    return result.get("value")  # type: ignore[return-value]
