# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""verl plugin for every platform: one colocated weight-sync socket per Ray cluster, not per Ray job id.

verl's colocated vLLM weight sync meets on `ipc:///tmp/rl-colocate-zmq-{job_id}-replica-{r}-rank-{k}.sock`: the
trainer side binds it (`ServerAdapter`, `verl/workers/rollout/vllm_rollout/vllm_rollout.py:139-141`), vLLM's worker
connects to it with the job id the server actor exported as `VERL_RAY_JOB_ID` (`vllm_async_server.py:143`,
`utils.py:424-431`). Ray numbers jobs per cluster, so the first driver of every cluster is job `01000000`, and two
runs on one host with their own Ray clusters (two CPU demos, two jobs on one GPU node) use the same path. The sender
removes the path before it binds and again when it finishes (`bucketed_weight_transfer.py:168-177`, `:199-207`), so
one run can take the other's socket over or delete it: a vLLM worker then waits for a trainer that never answers (the
sync stalls until `atropos.sync_timeout`) or receives the other run's weights.

Fix, applied in the processes that build the path: the job id becomes `{job_id}-{node}` with the first 12 hex digits
of the Ray node id, which is random per cluster start and shared by the colocated trainer rank and vLLM server.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from types import ModuleType

from atropos_verl.import_hooks import when_imported

SENDER_MODULE = "verl.workers.rollout.vllm_rollout.vllm_rollout"
SERVER_MODULE = "verl.workers.rollout.vllm_rollout.vllm_async_server"
JOB_ENV = "VERL_RAY_JOB_ID"
NODE_DIGITS = 12

logger = logging.getLogger(__name__)


def cluster_scoped_job_id() -> str:
    """The Ray job id plus this node's id prefix: unique per Ray cluster, equal for actors on the same node."""
    import ray

    context = ray.get_runtime_context()
    return f"{context.get_job_id()}-{context.get_node_id()[:NODE_DIGITS]}"


def scope_handle(handle: str, job_id: str, scoped: str) -> str:
    """`...-zmq-{job_id}-replica-...` -> `...-zmq-{scoped}-replica-...`; any other handle is returned unchanged."""
    return handle.replace(f"-zmq-{job_id}-replica-", f"-zmq-{scoped}-replica-", 1)


def _class(module: ModuleType, name: str) -> type | None:
    """The class to wrap; a warning instead of an import error if verl renamed it (tests/test_sync_socket.py fails)."""
    cls = getattr(module, name, None)
    if cls is None:
        logger.warning("%s.%s not found: weight-sync sockets are not scoped per Ray cluster", module.__name__, name)
    return cls


def _wrap_init(module: ModuleType, name: str, after: Callable[[object], None]) -> None:
    """Run `after(instance)` at the end of `module.name.__init__` (once, however often the hook fires)."""
    cls = _class(module, name)
    if cls is None or getattr(cls.__init__, "_atropos_scoped", False):
        return
    original = cls.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        after(self)

    __init__._atropos_scoped = True
    cls.__init__ = __init__


NO_MATCH = (
    "sync_socket: verl's weight-sync handle %r does not have the form `...-zmq-{job_id}-replica-...` this plugin "
    "rewrites (verl changed `ServerAdapter` in vllm_rollout.py). The vLLM side still gets the scoped job id, so the "
    "two ends will not meet and the first weight sync will stall until atropos.sync_timeout. Exclude the plugin "
    "(VERL_USE_EXTERNAL_PLUGINS=cpu) and report the verl version."
)


def scope_sender_handle(handle: str, job_id: str, scoped: str) -> str:
    """The sender's handle scoped; loud (error log + RuntimeWarning) when the rewrite matches nothing."""
    new = scope_handle(handle, job_id, scoped)
    if new == handle:
        logger.error(NO_MATCH, handle)
        warnings.warn(NO_MATCH % (handle,), RuntimeWarning, stacklevel=2)
    return new


def _scope_sender(rollout) -> None:
    import ray

    job_id = ray.get_runtime_context().get_job_id()
    rollout.zmq_handle = scope_sender_handle(rollout.zmq_handle, job_id, cluster_scoped_job_id())


def _export_scoped_job_id(_server) -> None:
    # Read by the vLLM worker processes this actor starts later (launch_server).
    os.environ[JOB_ENV] = cluster_scoped_job_id()


def install() -> None:
    when_imported(SENDER_MODULE, lambda module: _wrap_init(module, "ServerAdapter", _scope_sender))
    when_imported(SERVER_MODULE, lambda module: _wrap_init(module, "vLLMHttpServer", _export_scoped_job_id))


install()
