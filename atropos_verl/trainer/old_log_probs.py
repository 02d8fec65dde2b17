# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Where PPO's old log-probs come from: verl's recompute pass (decoupled mode, the default) or the environments'
`inference_logprobs` (verl's bypass mode, `algorithm.rollout_correction.bypass_mode=true`).

Bypass mode skips one actor forward pass per step; the PPO ratio is then taken against the policy that sampled the
data (up to `max_batches_offpolicy` updates old), and verl's `bypass_mode` policy loss adds its rejection masks and
IS metrics (`loss_type`: `ppo_clip` or `reinforce`).
"""

from __future__ import annotations

from omegaconf import DictConfig, open_dict
from verl import DataProto

ROLLOUT = "rollout_log_probs"


def bypass_enabled(config: DictConfig) -> bool:
    corr = config.algorithm.get("rollout_correction")
    return bool(corr is not None and corr.get("bypass_mode", False))


def route_bypass_loss(config: DictConfig) -> None:
    """Give the actor verl's `bypass_mode` policy loss and its rollout-correction settings.

    verl's own trainer sets these on the driver's config inside `fit()` (`rollout_corr_helper.apply_bypass_mode`);
    workers receive their config once, when they are created, so here it is done before that.
    """
    if not bypass_enabled(config):
        return
    policy_loss = config.actor_rollout_ref.actor.policy_loss
    with open_dict(policy_loss):
        policy_loss.loss_mode = "bypass_mode"
        policy_loss.rollout_correction = config.algorithm.rollout_correction


def take_rollout_log_probs(batch: DataProto) -> bool:
    """Use the envs' sampling log-probs as old log-probs; False when the batch lacks them (some group sent none)."""
    if ROLLOUT not in batch.batch.keys():
        return False
    batch.batch["old_log_probs"] = batch.batch[ROLLOUT]
    return True
