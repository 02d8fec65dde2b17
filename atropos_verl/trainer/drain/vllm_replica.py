# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""verl's vLLM replica with a drained pause, a sleep that keeps queued requests and a resume that reports.

Added to `vLLMHttpServer` and `vLLMReplica` through their own hook points, everything else inherited:
- `drain_generation(timeout)`: see `engines.drain_vllm`; it also reports `policy_stamp.stats()` as the pause began.
- `set_global_steps` (verl calls it after every weight push) also sets the policy version the server stamps on its
  answers (`policy_stamp`); `policy_stats()` reports it with the count of completions answered.
- `resume_and_report()`: verl's `resume_generation` makes two Ray calls per replica one after the other (resume the
  engine, then open the submission gate); here the first server does both in one call and answers with its
  `policy_stamp.stats()`, which the trainer reads after every push anyway. The other servers' gates open after it,
  as in verl.
- `_sleep_hybrid`: vLLM's `sleep()` pauses the scheduler first, by default with `mode="abort"`, which also aborts
  requests merely *queued* during the drain (`vllm/v1/engine/core.py` sleep -> pause_scheduler ->
  `finish_requests(None, FINISHED_ABORTED)`). With `mode="keep"` they stay queued through the sleep and run after the
  wake-up in `update_weights`, on the new weights. After a drain nothing is running, so no KV state is kept across
  the sleep.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ray
from verl.workers.rollout.vllm_rollout.vllm_async_server import vLLMHttpServer, vLLMReplica

from . import policy_stamp
from .engines import drain_vllm, vllm_sleep_keeps_queue

logger = logging.getLogger(__name__)


class DrainingVLLMHttpServer(vLLMHttpServer):
    async def drain_generation(self, timeout: float) -> dict[str, Any] | None:
        if self.node_rank != 0:
            return None
        served = policy_stamp.stats()  # what was answered up to the pause: the trainer's overlap reading, no extra call
        return {**await drain_vllm(self.engine, timeout), "served": served}

    async def set_global_steps(self, global_steps: int) -> None:
        await super().set_global_steps(global_steps)
        policy_stamp.set_version(global_steps)

    async def policy_stats(self) -> dict[str, Any] | None:
        return policy_stamp.stats() if self.node_rank == 0 else None

    async def resume_generation_and_report(self) -> dict[str, Any] | None:
        await self.resume_generation()
        return await self.policy_stats()

    async def _sleep_hybrid(self) -> None:
        if not vllm_sleep_keeps_queue(self.engine):
            logger.warning("this vLLM's sleep() has no mode argument: requests queued during the sleep may be aborted")
            await super()._sleep_hybrid()
            return
        await self.engine.sleep(level=self._resolve_sleep_level(), mode="keep")
        await self.engine.reset_encoder_cache()


class DrainingVLLMReplica(vLLMReplica):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server_class = ray.remote(DrainingVLLMHttpServer)

    async def drain_generation(self, timeout: float) -> list[dict[str, Any]]:
        results = await asyncio.gather(*[server.drain_generation.remote(timeout) for server in self.servers])
        return [r for r in results if r is not None]

    async def policy_stats(self) -> list[dict[str, Any]]:
        results = await asyncio.gather(*[server.policy_stats.remote() for server in self.servers])
        return [r for r in results if r is not None]

    async def resume_and_report(self) -> list[dict[str, Any]]:
        """verl's `resume_generation` (engine first, then every gate) returning `policy_stats()`, in fewer calls."""
        first, *others = self.servers
        served = await first.resume_generation_and_report.remote()
        rest = await asyncio.gather(*[server.open_submission_gate.remote() for server in others])
        return [r for r in (served, *rest) if r is not None]
