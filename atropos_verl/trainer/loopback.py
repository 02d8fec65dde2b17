# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Single-node runs bind every server they start to loopback: nothing of a run on one machine should answer others.

Ray picks one "node IP" and every server of the run derives its bind address from it: GCS, raylet, object manager,
dashboard/metrics and runtime-env agents (as `::ffff:<ip>` / `<ip>`), and verl's vLLM HTTP server, which binds
`ray.util.get_node_ip_address()` (`verl/workers/rollout/vllm_rollout/vllm_async_server.py:179`; its DP/master
ports use the same address, :208-213). Ray takes the node IP from the routable interface unless
`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER` is false (`ray/_private/services.py:815` `get_node_ip_address`, flag read once at
import in `ray/_private/ray_constants.py:658`); `ray.init(_node_ip_address="127.0.0.1")` does not help, Ray turns a
loopback address back into the routable one (`services.py:786` `resolve_ip_for_localhost`). So: the env var for
every process Ray starts (they inherit ours), and the already-imported flag for this driver.
"""

from __future__ import annotations

import os
from typing import Any

FLAG = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def single_node(config: Any) -> bool:
    """No cluster to join (no `ray_kwargs.ray_init.address`, no RAY_ADDRESS) and one node: the run starts Ray itself."""
    ray_init = (config.get("ray_kwargs") or {}).get("ray_init") or {}
    return not ray_init.get("address") and not os.environ.get("RAY_ADDRESS") and int(config.trainer.nnodes) == 1


def bind_loopback() -> None:
    """Make the Ray cluster this process is about to start (and verl's servers in it) use 127.0.0.1."""
    from ray._private import ray_constants

    os.environ[FLAG] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
