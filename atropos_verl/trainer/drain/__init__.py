# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Drained weight sync for verl's hybrid cycle with environments generating over HTTP.

Order per step (the trainer drives it): batch in hand -> `RolloutDrain.drain()` (running env requests finish, new ones
wait inside the servers) -> `sleep_replicas()` -> train -> `update_weights()` (wakes the engines, queued requests run
on the new weights) -> `resume_generation_replicas()`. No env ever receives an aborted or half-old completion unless
the drain times out and `on_timeout="abort"` was chosen, which is warned about and counted.

`install_draining_replicas()` swaps verl's replica classes for the subclasses in `vllm_replica` / `sglang_replica`
through verl's own `RolloutReplicaRegistry`; it must run in the driver before `init_workers()`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from verl.utils.ray_utils import auto_await
from verl.workers.rollout.replica import RolloutReplicaRegistry

logger = logging.getLogger(__name__)

_INSTALLED: dict[str, Callable[[], type]] = {}


class DrainTimeoutError(TimeoutError):
    """In-flight environment requests did not finish within atropos.drain_timeout and the run was told to fail."""


def _draining_loader(name: str, original: Callable[[], type]) -> Callable[[], type]:
    def load() -> type:
        original()  # verl's loader prepares the import (e.g. SGLang's environment) and fails clearly without the engine
        if name == "vllm":
            from .vllm_replica import DrainingVLLMReplica

            return DrainingVLLMReplica
        from .sglang_replica import DrainingSGLangReplica

        return DrainingSGLangReplica

    return load


def install_draining_replicas(names: Sequence[str] = ("vllm", "sglang")) -> None:
    """Register the draining replica classes under verl's names (idempotent)."""
    for name in names:
        if name in _INSTALLED:
            continue
        if name not in RolloutReplicaRegistry._registry:
            raise ValueError(f"verl has no rollout replica '{name}' to extend")
        original = RolloutReplicaRegistry._registry[name]
        _INSTALLED[name] = original
        RolloutReplicaRegistry.register(name, _draining_loader(name, original))


@auto_await
async def served_stats(replicas: Sequence[Any]) -> list[dict[str, Any]]:
    """Each server's policy version and answered completions/tokens (`policy_stamp.stats`); [] for replicas that do
    not stamp (SGLang)."""
    calls = [replica.policy_stats() for replica in replicas if hasattr(replica, "policy_stats")]
    return [stats for per_replica in await asyncio.gather(*calls) for stats in per_replica]


@auto_await
async def resume_and_report(replicas: Sequence[Any]) -> list[dict[str, Any]]:
    """Resume generation on every replica (verl's `resume_generation_replicas`) and return `served_stats`, in one Ray
    call per replica where it can (`DrainingVLLMReplica.resume_and_report`): the trainer reads both after each push."""

    async def resume(replica: Any) -> list[dict[str, Any]]:
        if hasattr(replica, "resume_and_report"):
            return await replica.resume_and_report()
        await replica.resume_generation()
        return await served_stats([replica])

    return [stats for per_replica in await asyncio.gather(*map(resume, replicas)) for stats in per_replica]


def overlap_metrics(before: Sequence[dict[str, Any]], after: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Completions and tokens the servers answered between two `served_stats` calls (the actor's update)."""
    if not before or len(before) != len(after):
        return {}
    return {
        "atropos/overlap/completions_during_update": float(sum(a["answered"] - b["answered"]
                                                               for a, b in zip(after, before, strict=True))),
        "atropos/overlap/tokens_during_update": float(sum(a["completion_tokens"] - b["completion_tokens"]
                                                          for a, b in zip(after, before, strict=True))),
    }


class RolloutDrain:
    """Drain every replica with one deadline; degrade to verl's abort (warned, counted) or fail, as configured."""

    def __init__(
        self,
        replicas: Sequence[Any],
        *,
        timeout: float,
        on_timeout: str = "abort",
        abort: Callable[[], Any] | None = None,
    ) -> None:
        missing = [type(r).__name__ for r in replicas if not hasattr(r, "drain_generation")]
        if missing:
            raise TypeError(
                f"rollout replicas {missing} cannot drain; call install_draining_replicas() before init_workers()"
            )
        if on_timeout not in ("abort", "fail"):
            raise ValueError(f"on_timeout must be 'abort' or 'fail', not {on_timeout!r}")
        self.replicas = list(replicas)
        #: Each server's `policy_stamp.stats()` as the last drain began (servers that report them), [] before any.
        self.last_served: list[dict[str, Any]] = []
        self.timeout = float(timeout)
        self.on_timeout = on_timeout
        self.abort = abort

    @auto_await
    async def _drain_all(self) -> list[dict[str, Any]]:
        # Each server bounds its own wait; the outer bound only catches a server that stopped answering Ray calls.
        calls = [replica.drain_generation(self.timeout) for replica in self.replicas]
        per_replica = await asyncio.wait_for(asyncio.gather(*calls), self.timeout + 60.0)
        return [result for results in per_replica for result in results]

    def drain(self) -> dict[str, float]:
        """Drain now; returns `sync/*` metrics. Raises DrainTimeoutError when configured to fail."""
        try:
            results = self._drain_all()
        except TimeoutError:
            results = [{"drained": False, "in_flight": -1, "left": -1, "seconds": self.timeout}]
        self.last_served = [r["served"] for r in results if r.get("served") is not None]
        left = sum(max(int(r["left"]), 0) for r in results if not r["drained"])
        metrics = {
            "sync/in_flight_at_drain": float(sum(max(int(r["in_flight"]), 0) for r in results)),
            "sync/drain_seconds_max": float(max((r["seconds"] for r in results), default=0.0)),
            # Of that, waiting for requests that were running: generation time the trainer sits through. A server
            # with nothing running only paused, which is the sync's own cost.
            "sync/drain_wait_seconds": float(max((r["seconds"] for r in results if r["in_flight"]), default=0.0)),
            "sync/aborted_requests": 0.0,
        }
        if all(r["drained"] for r in results):
            return metrics
        message = (
            f"{left} environment request(s) still running after atropos.drain_timeout={self.timeout:.0f}s on "
            f"{sum(not r['drained'] for r in results)} server(s)"
        )
        if self.on_timeout == "fail" or self.abort is None:
            raise DrainTimeoutError(
                message + "; raise atropos.drain_timeout, lower the environments' max_tokens, or set "
                "atropos.on_drain_timeout=abort to abort them"
            )
        logger.warning("%s; aborting them (environments receive finish_reason=abort)", message)
        self.abort()
        metrics["sync/aborted_requests"] = float(left)
        return metrics
