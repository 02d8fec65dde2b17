# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Per-sequence sampling temperatures through verl's log-prob and update calls.

Environments may sample at different temperatures (per-item `overrides`, `generation_params`), and log-probs must be
computed at the temperature each sequence was sampled with. verl 0.9.1's FSDP engine supports that: it takes
`micro_batch["temperature"]` as a scalar or as a [B] tensor (`verl/workers/engine/fsdp/transformer_impl.py:1159-1186`).
What gets in the way is the trainer: `_update_actor` always writes the config's scalar `rollout.temperature` into
`meta_info` (`verl/trainer/ppo/ray_trainer.py:1330`), and a tensor and a meta entry of the same name collide in
`to_tensordict` (`verl/utils/tensordict_utils.py:452`, `assert key not in tensor_dict`).

`ItemTemperatureProto` resolves that where the tensordict is built: a batch with one temperature goes to the engine as
that scalar (keeping verl's unit-temperature fast path and fused kernels usable); a batch with several goes as the
per-sequence tensor. Either way the temperature the sequence was sampled at wins over the config's.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict
from verl import DataProto

KEY = "temperature"


class MixedTemperatureError(ValueError):
    """Raised where the engine cannot take per-sequence temperatures (fused kernels) and a batch mixes them."""


def single_temperature(batch: DataProto) -> float | None:
    """The batch's one sampling temperature, or None when sequences were sampled at different temperatures."""
    temps = batch.batch[KEY]
    return float(temps[0]) if bool(torch.all(temps == temps[0])) else None


class ItemTemperatureProto(DataProto):
    """A DataProto whose tensordict carries the sampled temperatures instead of `meta_info["temperature"]`."""

    @classmethod
    def wrap(cls, data: DataProto) -> ItemTemperatureProto:
        if KEY not in data.batch.keys():
            raise KeyError(f"batch has no '{KEY}' tensor; build it with groups_to_dataproto")
        return cls(batch=data.batch, non_tensor_batch=data.non_tensor_batch, meta_info=data.meta_info)

    def to_tensordict(self) -> TensorDict:
        meta = dict(self.meta_info)
        value = single_temperature(self)
        if value is not None:
            meta[KEY] = value
            view = DataProto(batch=self.batch.exclude(KEY), non_tensor_batch=self.non_tensor_batch, meta_info=meta)
        else:
            meta.pop(KEY, None)
            view = DataProto(batch=self.batch, non_tensor_batch=self.non_tensor_batch, meta_info=meta)
        return view.to_tensordict()


def check_engine_supports(batch: DataProto, *, use_fused_kernels: bool) -> None:
    """Fail clearly (instead of an assert inside a worker) when fused kernels meet mixed temperatures."""
    if use_fused_kernels and single_temperature(batch) is None:
        temps = sorted({round(float(t), 6) for t in batch.batch[KEY]})
        raise MixedTemperatureError(
            f"this batch mixes sampling temperatures {temps}, but actor_rollout_ref.model.use_fused_kernels=True "
            f"supports one temperature per batch only (verl/workers/engine/fsdp/transformer_impl.py:1162); "
            f"disable fused kernels or have the environments sample at one temperature"
        )
