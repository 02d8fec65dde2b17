# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The gloo checkpoint engine between real processes, driven the way verl's `CheckpointEngineManager` drives it:
prepare on every rank, `build_topology` on the gathered metadata, `init_process_group`, then send/receive, twice
(the group is built once and reused), with weights spanning several buckets and one larger than a bucket."""

from __future__ import annotations

import asyncio
import io
import multiprocessing as mp
from typing import Any

import pytest
import torch

from atropos_verl.platform.gloo_checkpoint_engine import GlooCheckpointEngine

BUCKET = 4096  # bytes: the weights below need several buckets and one is split into chunks


def _weights(step: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(step)
    return {
        "embed.weight": torch.randn(40, 16, generator=gen),  # 2560 B
        "layers.0.mlp.weight": torch.randn(64, 32, generator=gen).to(torch.bfloat16),  # 4096 B: a bucket of its own
        "layers.0.big": torch.randn(3000, generator=gen),  # 12000 B: split into 3 chunks, merged on receipt
        "norm.weight": torch.ones(16, dtype=torch.float32) * step,
        "lm_head.bias": torch.arange(7, dtype=torch.int64),
    }


def _receiver(conn: Any) -> None:
    engine = GlooCheckpointEngine(BUCKET, host="127.0.0.1", timeout_s=60)
    conn.send(engine.prepare())
    received = []
    for _ in range(2):
        engine.init_process_group(**conn.recv())

        async def receive() -> dict[str, torch.Tensor]:
            return {name: tensor.clone() async for name, tensor in engine.receive_weights()}

        received.append(asyncio.run(receive()))
        engine.finalize()
    # Serialised to bytes: a pickled tensor travels as a shared-memory handle that dies with this process.
    buffer = io.BytesIO()
    torch.save(received, buffer)
    conn.send_bytes(buffer.getvalue())


@pytest.mark.timeout(120)
def test_two_pushes_arrive_whole_over_one_group() -> None:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_receiver, args=(child,))
    proc.start()
    try:
        sender = GlooCheckpointEngine(BUCKET, is_master=True, host="127.0.0.1", timeout_s=60)
        results = []
        for step in (1, 2):
            metadata = [sender.prepare(), parent.recv() if step == 1 else {}]
            actor_kwargs, rollout_kwargs = GlooCheckpointEngine.build_topology(1, 1, metadata)
            assert actor_kwargs["rank"] == [0] and rollout_kwargs["rank"] == [1]
            parent.send({k: v[0] for k, v in rollout_kwargs.items()})
            sender.init_process_group(**{k: v[0] for k, v in actor_kwargs.items()})
            if step == 1:
                group = sender._group
            assert sender._group is group  # reused, not rebuilt
            results.append(asyncio.run(sender.send_weights(iter(_weights(step).items()))))
            sender.finalize()
        received = torch.load(io.BytesIO(parent.recv_bytes()))
    finally:
        proc.join(timeout=60)
        if proc.is_alive():
            proc.kill()
    assert proc.exitcode == 0
    assert sender._address[0] == "127.0.0.1"
    for step, got in zip((1, 2), received, strict=True):
        expected = _weights(step)
        assert list(got) == list(expected)
        for name, tensor in expected.items():
            assert got[name].dtype == tensor.dtype and got[name].shape == tensor.shape
            assert torch.equal(got[name], tensor), name
    total = sum(t.numel() * t.element_size() for t in _weights(1).values())
    assert results[0]["gloo_push_bytes"] == total


def test_topology_sends_from_actor_rank_zero_only() -> None:
    actor, rollout = GlooCheckpointEngine.build_topology(3, 2, [{"host": "127.0.0.1", "port": 1}, {}, {}, {}, {}])
    assert actor["rank"] == [0, -1, -1]
    assert rollout["rank"] == [1, 2]
    assert set(actor["world_size"] + rollout["world_size"]) == {3}


def test_topology_without_a_master_names_the_cause() -> None:
    with pytest.raises(RuntimeError, match="is_master"):
        GlooCheckpointEngine.build_topology(1, 1, [{}, {}])


def test_a_changed_group_is_refused() -> None:
    engine = GlooCheckpointEngine(BUCKET)
    engine._group, engine.rank, engine.world_size = object(), 1, 2
    with pytest.raises(RuntimeError, match="not supported"):
        engine.init_process_group(rank=1, world_size=3, master={"host": "127.0.0.1", "port": 1})


def test_registered_under_verls_registry() -> None:
    from verl.checkpoint_engine.base import CheckpointEngineRegistry

    assert CheckpointEngineRegistry.get("gloo") is GlooCheckpointEngine
