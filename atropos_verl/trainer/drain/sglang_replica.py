# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""verl's SGLang replica with a drained pause, the policy-version stamp, the run's key and a health route that does not
generate.

verl serves SGLang's module-level FastAPI `app` itself (`set_global_state` + its own `run_uvicorn`), bypassing
SGLang's `launch_server`, so what SGLang's own launch would add is missing; `launch_server` here adds, before verl
serves the app (middleware cannot be added once it runs), on the node-rank 0 server that serves HTTP:
- `policy_stamp.PolicyVersionStamp`, the same middleware the vLLM servers get: every answer carries the policy version
  (`set_global_steps`, which verl calls after every push, sets it) and the answered completions are counted;
- `server_key.ServerKeyGuard` when the run has a key: SGLang installs its own key check only in `launch_server`;
- `SGLANG_ENABLE_HEALTH_ENDPOINT_GENERATION=false`: SGLang's `/health` otherwise generates a token, which parks while
  the servers are paused for a push and answers 503 after 20 s, so every push would look like an outage.

The drain itself: `engines.drain_sglang`. verl's `SGLangHttpServer.sleep` releases KV cache and weights without
pausing generation (`verl/workers/rollout/sglang_rollout/async_sglang_server.py` sleep); with the tokenizer manager's
`is_pause` set and the running requests finished first, nothing reaches the scheduler while memory is released.
verl's own `resume_generation` (`continue_generation`) clears the flag after `update_weights`.
"""

from __future__ import annotations

import os
from typing import Any

import ray
from verl.workers.rollout.sglang_rollout.async_sglang_server import SGLangHttpServer, SGLangReplica

from atropos_verl.server_key import ServerKeyGuard, for_servers

from . import policy_stamp
from .engines import drain_sglang

#: SGLang's switch for a `/health` that answers without generating (`sglang/srt/environ.py`).
HEALTH_GENERATION_ENV = "SGLANG_ENABLE_HEALTH_ENDPOINT_GENERATION"


def add_run_middleware(app: Any, key: str | None) -> None:
    """The stamp, and the key guard outermost (a refused request is not counted). Called once per server process."""
    app.add_middleware(policy_stamp.PolicyVersionStamp)
    if key is not None:
        app.add_middleware(ServerKeyGuard, key=key)


class DrainingSGLangHttpServer(SGLangHttpServer):
    async def launch_server(self, *args: Any, **kwargs: Any) -> Any:
        os.environ[HEALTH_GENERATION_ENV] = "false"
        if self.node_rank == 0:
            from sglang.srt.entrypoints.http_server import app

            add_run_middleware(app, for_servers())
        return await super().launch_server(*args, **kwargs)

    async def drain_generation(self, timeout: float) -> dict[str, Any] | None:
        if self.node_rank != 0:
            return None
        served = policy_stamp.stats()
        return {**await drain_sglang(self.tokenizer_manager, timeout), "served": served}

    async def set_global_steps(self, global_steps: int) -> None:
        await super().set_global_steps(global_steps)
        policy_stamp.set_version(global_steps)

    async def policy_stats(self) -> dict[str, Any] | None:
        return policy_stamp.stats() if self.node_rank == 0 else None


class DrainingSGLangReplica(SGLangReplica):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server_class = ray.remote(DrainingSGLangHttpServer)

    async def drain_generation(self, timeout: float) -> list[dict[str, Any]]:
        # SGLang control calls are served by the node-rank 0 server only (verl SGLangReplica.abort_all_requests).
        result = await self.servers[0].drain_generation.remote(timeout)
        return [result] if result is not None else []

    async def policy_stats(self) -> list[dict[str, Any]]:
        result = await self.servers[0].policy_stats.remote()
        return [result] if result is not None else []
