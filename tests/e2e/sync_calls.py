# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""verl's hybrid-mode control calls on a CheckpointEngineManager, each with a deadline, for tests and benchmarks that
drive a trainer's workers step by step instead of through `AtroposRayTrainer.fit`."""

from __future__ import annotations

from typing import Any

from atropos_verl.trainer.deadline import call_with_timeout, sync_hint

CPU_EXTENSION = "atropos_verl.platform.vllm_worker_ext.CPUColocateWorkerExtension"
ACTORS_HINT = "Check that the vLLM server actors are alive (ray list actors) and their logs."


def update_weights(checkpoint_manager, global_steps: int | None = None, *, timeout_s: float = 300.0) -> Any:
    """`checkpoint_manager.update_weights(global_steps)` (syncs and wakes the replicas) with a deadline."""
    return call_with_timeout(checkpoint_manager.update_weights, global_steps, timeout_s=timeout_s,
                             what="weight sync", hint=sync_hint(CPU_EXTENSION))


def sleep_replicas(checkpoint_manager, *, timeout_s: float = 120.0) -> Any:
    """Pause the replicas (before training on the collected batch) with a deadline."""
    return call_with_timeout(checkpoint_manager.sleep_replicas, timeout_s=timeout_s, what="sleep_replicas",
                             hint=ACTORS_HINT)
