# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Hybrid-mode weight sync and sleep/wake with a deadline.

In hybrid mode the replicas are paused from `sleep_replicas()` until the next `update_weights()`. If the vLLM-side
receiver of a sync dies, verl's `BucketedWeightSender` (`verl/workers/rollout/vllm_rollout/bucketed_weight_transfer.py`,
`async_send_weights`) waits on a ZMQ `recv()` with no timeout, and `CheckpointEngineManager.update_weights`
(`verl/checkpoint_engine/base.py:510-521`) blocks in `ray.get` forever. These wrappers turn that into an error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

SYNC_HINT = (
    "Check the vLLM server/worker logs in the Ray session directory (logs/worker-*.err) for the receiver's exception "
    "(e.g. from update_weights_from_ipc / reload_weights); that "
    "actor_rollout_ref.rollout.engine_kwargs.vllm.worker_extension_cls is the CPU extension "
    "(atropos_verl.platform.vllm_worker_ext.CPUColocateWorkerExtension); that every tensor fits in "
    "rollout.checkpoint_engine.update_weights_bucket_megabytes; and that /dev/shm has room for one bucket. "
    "The trainer-side sender is still blocked: shut the Ray cluster down."
)


class RolloutTimeoutError(TimeoutError):
    """A hybrid-mode rollout control call (weight sync, sleep, wake-up) did not finish in time."""


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


def update_weights(checkpoint_manager, global_steps: int | None = None, *, timeout_s: float = 300.0) -> Any:
    """`checkpoint_manager.update_weights(global_steps)` (syncs and wakes the replicas) with a deadline."""
    return call_with_timeout(
        checkpoint_manager.update_weights, global_steps, timeout_s=timeout_s, what="weight sync", hint=SYNC_HINT
    )


ACTORS_HINT = "Check that the vLLM server actors are alive (ray list actors) and their logs."


def sleep_replicas(checkpoint_manager, *, timeout_s: float = 120.0) -> Any:
    """Pause the replicas (before training on the collected batch) with a deadline."""
    return call_with_timeout(
        checkpoint_manager.sleep_replicas,
        timeout_s=timeout_s,
        what="sleep_replicas",
        hint=ACTORS_HINT,
    )


def wake_up_replicas(checkpoint_manager, *, timeout_s: float = 120.0) -> Any:
    """Resume the replicas without a weight sync, with a deadline."""
    return call_with_timeout(
        checkpoint_manager.wake_up_replicas,
        timeout_s=timeout_s,
        what="wake_up_replicas",
        hint=ACTORS_HINT,
    )
