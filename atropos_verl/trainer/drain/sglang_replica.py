# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""verl's SGLang replica with a drained pause (`engines.drain_sglang`).

verl's `SGLangHttpServer.sleep` releases KV cache and weights without pausing generation
(`verl/workers/rollout/sglang_rollout/async_sglang_server.py` sleep); with the tokenizer manager's `is_pause` set and
the running requests finished first, nothing reaches the scheduler while memory is released. verl's own
`resume_generation` (`continue_generation`) clears the flag after `update_weights`.
"""

from __future__ import annotations

from typing import Any

import ray
from verl.workers.rollout.sglang_rollout.async_sglang_server import SGLangHttpServer, SGLangReplica

from .engines import drain_sglang


class DrainingSGLangHttpServer(SGLangHttpServer):
    async def drain_generation(self, timeout: float) -> dict[str, Any] | None:
        if self.node_rank != 0:
            return None
        return await drain_sglang(self.tokenizer_manager, timeout)


class DrainingSGLangReplica(SGLangReplica):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server_class = ray.remote(DrainingSGLangHttpServer)

    async def drain_generation(self, timeout: float) -> list[dict[str, Any]]:
        # SGLang control calls are served by the node-rank 0 server only (verl SGLangReplica.abort_all_requests).
        result = await self.servers[0].drain_generation.remote(timeout)
        return [result] if result is not None else []
