# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""GRPO advantages for Atropos batches, with the environment's own overrides applied per sequence.

Order matters and is the whole point of this module:
1. verl's GRPO outcome advantage per group (`uid`), from the env's scores (or KL-shaped rewards when present);
2. sequences whose group sent token-level `advantages` take those instead (only inside their response mask);
3. sequences with `set_advantage_to_zero` get exactly 0, *after* normalisation (zeroing the reward before it would
   give them a non-zero advantage and shift their siblings).
Groups are independent: a group with env advantages never changes the advantages of one without.
"""

from __future__ import annotations

from typing import Any

import torch
from verl import DataProto
from verl.trainer.ppo import core_algos


def compute_advantages(
    data: DataProto,
    *,
    norm_adv_by_std_in_grpo: bool = True,
    adv_estimator: str = "grpo",
    epsilon: float = 1e-6,
    config: Any = None,
) -> DataProto:
    """Add `advantages` and `returns` [B, R] to a batch built by `groups_to_dataproto`; returns the same DataProto."""
    batch = data.batch
    response_mask = batch["response_mask"]
    rewards = batch["token_level_rewards"] if "token_level_rewards" in batch.keys() else batch["token_level_scores"]
    estimator = core_algos.get_adv_estimator_fn(adv_estimator)
    advantages, returns = estimator(
        token_level_rewards=rewards,
        response_mask=response_mask,
        index=data.non_tensor_batch["uid"],
        epsilon=epsilon,
        norm_adv_by_std_in_grpo=norm_adv_by_std_in_grpo,
        config=config,  # verl's AlgoConfig; some estimators (grpo_passk, ...) read it and assert it is given
    )
    mask = response_mask.to(advantages.dtype)
    if "has_env_advantages" in batch.keys():
        env = batch["has_env_advantages"].bool().unsqueeze(-1)
        env_values = batch["env_advantages"].to(advantages.dtype) * mask
        advantages = torch.where(env, env_values, advantages)
        returns = torch.where(env, env_values, returns)
    if "zero_advantage" in batch.keys():
        zero = batch["zero_advantage"].bool().unsqueeze(-1)
        advantages = advantages.masked_fill(zero, 0.0)
        returns = returns.masked_fill(zero, 0.0)
    batch["advantages"] = advantages
    batch["returns"] = returns
    return data
