# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""verl's `CheckpointEngineManager` with the push to standalone replicas drained instead of aborted.

For every backend but `naive`, verl's `update_weights` (`verl/checkpoint_engine/base.py`) first calls
`abort_replicas()`: vLLM's `pause_generation(mode="abort")` ends every running *and queued* request with
`finish_reason: "abort"`. verl's own agent loop resubmits those (partial rollout); an Atropos environment receives
them as completions and scores them. The trainer has already drained the servers before the push
(`RolloutDrain.drain()`: running requests finished, new ones wait), so during the push that abort is skipped and
everything else is verl's: process group, transfer, kv-cache release/resume, resume of generation.

Selected through verl's own `actor_rollout_ref.rollout.checkpoint_manager_class` (set by standalone placement).
An abort the trainer asks for outside a push (`atropos.on_drain_timeout=abort`) is still verl's.
"""

from __future__ import annotations

from typing import Any

from verl.checkpoint_engine import CheckpointEngineManager
from verl.utils.ray_utils import auto_await

FQN = f"{__name__}.DrainedCheckpointManager"


class DrainedCheckpointManager(CheckpointEngineManager):
    """Pushes weights to replicas the trainer has already drained; never aborts a request to do so."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pushing = False

    @auto_await
    async def update_weights(self, global_steps: int | None = None) -> dict[str, Any]:
        self._pushing = True
        try:
            return await super().update_weights(global_steps)
        finally:
            self._pushing = False

    @auto_await
    async def abort_replicas(self, reject_request: bool = False) -> None:
        if self._pushing:  # the replicas are drained and paused: nothing runs, and what waits must not be aborted
            return
        await super().abort_replicas(reject_request=reject_request)
