# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""GRPO advantages with Atropos overrides (atropos_verl.trainer.advantages)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

from atropos_verl.trainer.advantages import compute_advantages
from atropos_verl.trainer.batch import groups_to_dataproto
from tests.atropos_groups import group, sequence, simple_group


def convert(groups):
    return groups_to_dataproto(groups, pad_token_id=0, max_prompt_length=32, max_response_length=32).data


def scalar_adv(data):
    """Per-sequence advantage (it is constant over the trainable tokens of an outcome estimator)."""
    adv, mask = data.batch["advantages"], data.batch["response_mask"].bool()
    return [adv[i][mask[i]][0].item() for i in range(len(data))]


def test_score_only_group_is_verls_grpo():
    data = compute_advantages(convert([group([sequence([1, 2], [3, 4])] * 4, [1.0, 0.0, 0.0, 1.0])]))
    expected, _ = compute_grpo_outcome_advantage(
        data.batch["token_level_scores"], data.batch["response_mask"], data.non_tensor_batch["uid"]
    )
    assert torch.allclose(data.batch["advantages"], expected)
    assert scalar_adv(data) == pytest.approx([0.866, -0.866, -0.866, 0.866], abs=1e-3)
    assert torch.equal(data.batch["returns"], data.batch["advantages"])


def test_groups_are_independent_of_env_advantage_groups():
    plain = simple_group(4)
    alone = compute_advantages(convert([plain]))
    s = sequence([1, 2], [3, 4, 5], env_spans=((1, 2),))
    env_group = group([s, s], [1.0, 0.0], advantages=[[0, 0, 0.25, 7.0, -0.5], [0, 0, 1.0, 1.0, 1.0]])
    mixed = compute_advantages(convert([env_group, plain]))
    # score-only group: same values as when converted alone
    assert scalar_adv(mixed)[2:] == pytest.approx(scalar_adv(alone))
    # env group: token-level values, masked by response_mask (tool token at index 1 gets nothing)
    assert mixed.batch["advantages"][0, :3].tolist() == pytest.approx([0.25, 0.0, -0.5])
    assert mixed.batch["advantages"][1, :3].tolist() == pytest.approx([1.0, 0.0, 1.0])
    assert mixed.batch["advantages"][0, 3:].abs().sum() == 0


def test_set_advantage_to_zero_applies_after_normalisation():
    # math_server_zero style scores: the truncated item (score 0) must get advantage 0, siblings unaffected
    scores = [1.0, -1.0, -1.0, 0.0]
    g = group([sequence([1, 2], [3, 4])] * 4, scores, overrides=[{}, {}, {}, {"set_advantage_to_zero": True}])
    data = compute_advantages(convert([g]))
    mean, std = np.mean(scores), np.std(scores, ddof=1)
    expected = [(s - mean) / (std + 1e-6) for s in scores[:3]]
    assert scalar_adv(data)[:3] == pytest.approx(expected, abs=1e-5)
    assert data.batch["advantages"][3].abs().sum().item() == 0.0
    assert data.batch["returns"][3].abs().sum().item() == 0.0
    # zeroing the reward instead would have given the truncated item a positive advantage
    assert (0.0 - mean) / std > 0


def test_zero_override_beats_env_advantages():
    s = sequence([1, 2], [3, 4])
    g = group([s, s], [1.0, 0.0], advantages=[[0, 0, 2.0, 2.0]] * 2, overrides=[{"set_advantage_to_zero": True}, {}])
    data = compute_advantages(convert([g]))
    assert data.batch["advantages"][0].abs().sum() == 0
    assert data.batch["advantages"][1, :2].tolist() == [2.0, 2.0]


def test_dr_grpo_mean_only():
    data = convert([group([sequence([1], [2])] * 3, [3.0, 0.0, 0.0])])
    compute_advantages(data, norm_adv_by_std_in_grpo=False)
    assert scalar_adv(data) == pytest.approx([2.0, -1.0, -1.0])


def test_kl_shaped_rewards_take_precedence_over_scores():
    data = convert([group([sequence([1], [2])] * 2, [1.0, 0.0])])
    data.batch["token_level_rewards"] = data.batch["token_level_scores"] * 0 + torch.tensor([[0.0], [5.0]])
    compute_advantages(data)
    assert scalar_adv(data)[1] > 0 > scalar_adv(data)[0]


def test_estimators_that_read_verls_algorithm_config_run():
    # grpo_passk asserts its AlgoConfig is given; the trainer passes algorithm config through.
    from omegaconf import OmegaConf

    algo = OmegaConf.create({"norm_adv_by_std_in_grpo": False})
    data = convert([group([sequence([1, 2], [3, 4])] * 3, [0.0, 2.0, 0.5])])
    data = compute_advantages(data, adv_estimator="grpo_passk", config=algo)
    assert scalar_adv(data) == pytest.approx([0.0, 1.5, 0.0])
