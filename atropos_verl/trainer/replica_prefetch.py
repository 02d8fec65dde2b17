# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The driver imports the rollout engine's replica module while verl's actor workers start.

verl's `init_workers` imports the replica class (and with it vLLM or SGLang, 5-8 s on a 2-core CPU) only when it
creates the rollout servers, after the actor workers have started and built their model; until then the driver only
waits on Ray. Importing it in a background thread from the start of `init_workers` takes it off the path to the first
step. The class is then looked up through verl's own registry as before: an import still under way is waited for by
Python's module lock, and one that failed here fails again, with its own error, in the main thread.

SGLang is not prefetched: verl's loader for it (`verl/workers/rollout/replica.py` `_load_sglang`) sets and then deletes
`SGLANG_USE_CPU_ENGINE` in the process environment around the import, so a second lookup running at the same time
can find the variable gone and fail with a KeyError.
"""

from __future__ import annotations

import logging
import threading

from verl.workers.rollout.replica import RolloutReplicaRegistry

logger = logging.getLogger(__name__)

UNSAFE_TO_PREFETCH = frozenset({"sglang"})


def prefetch_replica_class(name: str) -> threading.Thread | None:
    """Start importing verl's replica class for rollout engine `name`; None when verl has no such engine, or for
    SGLang, whose loader is not safe to run beside another lookup."""
    if name not in RolloutReplicaRegistry._registry or name in UNSAFE_TO_PREFETCH:
        return None

    def load() -> None:
        try:
            RolloutReplicaRegistry.get(name)
        except Exception as err:  # the main thread's own lookup raises it where verl expects it
            logger.debug("prefetching the %s replica class failed: %r", name, err)

    thread = threading.Thread(target=load, name=f"prefetch-{name}-replica", daemon=True)
    thread.start()
    return thread
