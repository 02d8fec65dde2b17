# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""verl checkpoint engine `gloo`: the weight push to standalone rollout replicas where NCCL does not exist.

verl's standalone replicas receive weights through a `CheckpointEngine` (`verl/checkpoint_engine/base.py`): actor
rank 0 broadcasts buckets to a `CheckpointEngineWorker` beside each server, which hands them to the server through the
same path as the colocated sync. Every registered backend but `naive` needs an accelerator (NCCL/HCCL/NIXL/Mooncake
transports); `naive` only works colocated. This one broadcasts over a torch gloo process group, so the CPU platform
(and any host without an accelerator transport) can run rollout replicas on their own resources.

- Selected with `actor_rollout_ref.rollout.checkpoint_engine.backend=gloo` and registered in each worker process by
  verl's `checkpoint_engine.custom_backend_module` (this module).
- One group for the whole run: actor rank 0 plus every rollout worker, built on the first push and reused (verl calls
  `prepare`/`build_topology`/`init_process_group` before every push). Other actor ranks walk the weight generator
  (gathering a weight is collective over the actor group) and send nothing.
- Rendezvous: a TCPStore whose listening socket actor rank 0 binds to its Ray node address (127.0.0.1 in single-node
  runs, which `loopback.bind_loopback` arranges), not to every interface.
- Per bucket three broadcasts: the pickled bucket description's length, the description, then the bytes. Receivers
  allocate exactly the bucket's length; nothing of `update_weights_bucket_megabytes` is allocated up front.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import socket
import time
from collections.abc import AsyncGenerator, Generator
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from verl.checkpoint_engine.base import (
    CheckpointEngine,
    CheckpointEngineRegistry,
    merge_weight_chunks,
    split_weight_chunks,
)

logger = logging.getLogger(__name__)

BACKEND = "gloo"


def _node_address() -> str:
    try:
        import ray

        if ray.is_initialized():
            return ray.util.get_node_ip_address().strip("[]")
    except ImportError:  # pragma: no cover - ray is a dependency of verl
        pass
    return "127.0.0.1"


@CheckpointEngineRegistry.register(BACKEND)
class GlooCheckpointEngine(CheckpointEngine):
    """Broadcast weight buckets from actor rank 0 to the rollout workers over one gloo group.

    Args:
        bucket_size: the most bytes broadcast at once (verl passes `update_weights_bucket_megabytes`).
        is_master: True on actor rank 0 (the sender, which hosts the rendezvous).
        host: the address the rendezvous listens on and every rank's gloo device uses; default: the Ray node address.
        timeout_s: how long a rank waits for the others in the rendezvous and in every broadcast.
    """

    def __init__(self, bucket_size: int, is_master: bool = False, host: str | None = None,
                 timeout_s: float = 600.0) -> None:
        self.bucket_size = int(bucket_size)
        self.is_master = is_master
        self.host = host
        self.timeout = timedelta(seconds=float(timeout_s))
        self.rank: int | None = None
        self.world_size: int | None = None
        self._listener: socket.socket | None = None
        self._address: tuple[str, int] | None = None
        self._store: dist.Store | None = None
        self._group: Any = None

    # -- topology ----------------------------------------------------------------------------------------------------
    def prepare(self) -> dict[str, Any]:
        """The sender opens the rendezvous listener once and names it; receivers report nothing."""
        if not self.is_master:
            return {}
        if self._address is None:
            host = self.host or _node_address()
            listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, 0))
            listener.listen()
            self._listener = listener
            self._address = listener.getsockname()[:2]
        host, port = self._address
        return {"host": host, "port": port}

    @classmethod
    def build_topology(
        cls, actor_wg_world_size: int, rollout_world_size: int, metadata: list[dict]
    ) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
        master = metadata[0]
        if not master.get("port"):
            raise RuntimeError("gloo checkpoint engine: actor rank 0 did not open the rendezvous (is_master unset)")
        world_size = 1 + rollout_world_size
        actor = {
            "rank": [0] + [-1] * (actor_wg_world_size - 1),
            "world_size": [world_size] * actor_wg_world_size,
            "master": [master] * actor_wg_world_size,
        }
        rollout = {
            "rank": list(range(1, world_size)),
            "world_size": [world_size] * rollout_world_size,
            "master": [master] * rollout_world_size,
        }
        return actor, rollout

    def init_process_group(self, rank: int, world_size: int, master: dict[str, Any]) -> None:
        """Join the run's group on the first push; later pushes with the same topology reuse it."""
        if rank < 0 or (self._group is not None and (rank, world_size) == (self.rank, self.world_size)):
            self.rank, self.world_size = rank, world_size
            return
        if self._group is not None:
            raise RuntimeError(
                f"gloo checkpoint engine: the group changed from rank {self.rank}/{self.world_size} to "
                f"{rank}/{world_size}; adding or removing replicas during a run is not supported by this backend"
            )
        host, port = master["host"], int(master["port"])
        if rank == 0:
            assert self._listener is not None, "prepare() opens the listener before init_process_group()"
            listen_fd, self._listener = self._listener.detach(), None  # the store's daemon owns (and closes) it
            store = dist.TCPStore(host, port, world_size, True, timeout=self.timeout,
                                  master_listen_fd=listen_fd, use_libuv=False)
        else:
            store = dist.TCPStore(host, port, world_size, False, timeout=self.timeout)
        options = dist.ProcessGroupGloo._Options()
        options._devices = [dist.ProcessGroupGloo.create_device(hostname=self.host or _node_address())]
        options._timeout = self.timeout
        self._store = store
        self._group = dist.ProcessGroupGloo(dist.PrefixStore("atropos_verl_weights", store), rank, world_size,
                                            options)
        self.rank, self.world_size = rank, world_size
        logger.info("gloo checkpoint engine: rank %d of %d joined at %s:%d", rank, world_size, host, port)

    def finalize(self) -> None:
        """Nothing to free: buckets live for one broadcast and the group is kept for the next push."""

    # -- transfer ----------------------------------------------------------------------------------------------------
    async def _broadcast(self, tensor: torch.Tensor) -> None:
        group = self._group
        await asyncio.to_thread(lambda: group.broadcast(tensor, 0).wait())

    async def _send_bucket(self, pieces: list[torch.Tensor], description: dict[str, Any]) -> int:
        header = torch.frombuffer(bytearray(pickle.dumps(description)), dtype=torch.uint8)
        await self._broadcast(torch.tensor([header.numel()], dtype=torch.int64))
        await self._broadcast(header)
        payload = torch.cat(pieces) if pieces else torch.empty(0, dtype=torch.uint8)
        if payload.numel():
            await self._broadcast(payload)
        return payload.numel()

    @torch.no_grad()
    async def send_weights(
        self, weights: Generator[tuple[str, torch.Tensor], None, None], global_steps: int | None = None
    ) -> dict[str, float]:
        if self.rank is None:
            raise RuntimeError("gloo checkpoint engine: send_weights() before init_process_group()")
        if self.rank < 0:  # not in the group, but producing each weight is collective over the actor ranks
            for _ in weights:
                pass
            return {}
        start, sent = time.monotonic(), 0
        pieces: list[torch.Tensor] = []
        bucket: dict[str, Any] = {}
        offset = 0
        async for meta, chunk in split_weight_chunks(weights, self.bucket_size):
            if offset + meta.chunk_size > self.bucket_size and bucket:
                sent += await self._send_bucket(pieces, {"bucket_meta": bucket, "is_last": False})
                pieces, bucket, offset = [], {}, 0
            meta.offset = offset
            bucket[meta.name] = meta
            pieces.append(chunk.detach().to("cpu").reshape(-1).view(torch.uint8))
            offset += meta.chunk_size
        sent += await self._send_bucket(pieces, {"bucket_meta": bucket, "is_last": True})
        # Returned to verl's manager, which hands the sender's metrics to the trainer (`sync/gloo_push_*`).
        return {"gloo_push_seconds": time.monotonic() - start, "gloo_push_bytes": float(sent)}

    async def _receive_bucket(self) -> tuple[dict[str, Any], torch.Tensor]:
        length = torch.zeros(1, dtype=torch.int64)
        await self._broadcast(length)
        header = torch.empty(int(length.item()), dtype=torch.uint8)
        await self._broadcast(header)
        description = pickle.loads(header.numpy().tobytes())
        size = sum(meta.chunk_size for meta in description["bucket_meta"].values())
        payload = torch.empty(size, dtype=torch.uint8)
        if size:
            await self._broadcast(payload)
        return description, payload

    async def _chunks(self) -> AsyncGenerator[tuple[Any, torch.Tensor], None]:
        while True:
            description, payload = await self._receive_bucket()
            for meta in description["bucket_meta"].values():
                yield meta, payload[meta.offset : meta.offset + meta.chunk_size]
            if description["is_last"]:
                return

    async def receive_weights(self, global_steps: int | None = None) -> AsyncGenerator[tuple[str, torch.Tensor], None]:
        if self.rank is None or self.rank <= 0:
            raise RuntimeError("gloo checkpoint engine: receive_weights() needs a receiving rank (init_process_group)")
        async for name, tensor in merge_weight_chunks(self._chunks(), self.bucket_size):
            yield name, tensor
