# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Rules of ScoredData -> DataProto conversion (atropos_verl.trainer.batch)."""

from __future__ import annotations

import math

import pytest
import torch
from verl.utils.model import compute_position_id_with_mask

from atropos_verl.trainer.batch import Reason, groups_to_dataproto
from tests.atropos_groups import group, sequence, simple_group

PAD = 0


def convert(groups, max_prompt=64, max_response=64):
    return groups_to_dataproto(groups, pad_token_id=PAD, max_prompt_length=max_prompt, max_response_length=max_response)


def test_single_turn_layout():
    g = group([sequence([1, 2, 3], [4, 5]), sequence([1, 2, 3], [6, 7, 8])], [1.0, 0.0])
    b = convert([g]).data.batch
    assert b["prompts"].tolist() == [[PAD] * 5 + [1, 2, 3]] * 2
    assert b["responses"].tolist() == [[4, 5] + [PAD] * 6, [6, 7, 8] + [PAD] * 5]
    assert b["response_mask"].tolist() == [[1, 1] + [0] * 6, [1, 1, 1] + [0] * 5]
    assert torch.equal(b["input_ids"], torch.cat([b["prompts"], b["responses"]], dim=1))
    assert b["attention_mask"].tolist()[0] == [0] * 5 + [1] * 5 + [0] * 6
    assert torch.equal(b["position_ids"], compute_position_id_with_mask(b["attention_mask"]))


def test_widths_round_up_to_eight_but_never_past_the_caps():
    g = group([sequence(list(range(1, 10)), list(range(20, 31)))] * 2, [1.0, 0.0])
    b = convert([g]).data.batch
    assert b["prompts"].shape[1] == 16 and b["responses"].shape[1] == 16
    b = convert([g], max_prompt=10, max_response=12).data.batch
    assert b["prompts"].shape[1] == 10 and b["responses"].shape[1] == 12


def test_multi_turn_env_tokens_are_not_trained():
    # completion: model [4,5], tool output [6,7] (masked), model [8,9]
    s = sequence([1, 2, 3], [4, 5, 6, 7, 8, 9], env_spans=((2, 4),))
    g = group([s, sequence([1, 2, 3], [4, 9])], [1.0, 0.0])
    b = convert([g]).data.batch
    assert b["responses"][0, :6].tolist() == [4, 5, 6, 7, 8, 9]  # env tokens stay in context
    assert b["response_mask"][0, :8].tolist() == [1, 1, 0, 0, 1, 1, 0, 0]
    assert b["attention_mask"][0, -8:-2].tolist() == [1] * 6


def test_score_sits_at_last_trainable_position():
    s = sequence([1, 2], [4, 5, 6, 7], env_spans=((3, 4),))  # last completion token is an env token
    g = group([s, sequence([1, 2], [4])], [2.5, -1.0])
    b = convert([g]).data.batch
    assert b["token_level_scores"][0].tolist()[:4] == [0.0, 0.0, 2.5, 0.0]
    assert b["token_level_scores"][1].tolist()[0] == -1.0
    assert b["token_level_scores"].sum().item() == pytest.approx(1.5)


def test_temperature_precedence():
    item = simple_group(4, overrides=[{"temperature": 0.3}, {}, None, {"temperature": 0}],
                        generation_params={"temperature": 0.7}, group_overrides={"temperature": 0.9})
    only_group = simple_group(2, group_overrides={"temperature": 0.9})
    default = simple_group(2)
    t = convert([item, only_group, default]).data.batch["temperature"].tolist()
    assert t == pytest.approx([0.3, 0.7, 0.7, 0.7, 0.9, 0.9, 1.0, 1.0])


def test_zero_advantage_flag_from_overrides():
    g = simple_group(3, overrides=[{"set_advantage_to_zero": True}, {}, {"set_advantage_to_zero": False}])
    assert convert([g]).data.batch["zero_advantage"].tolist() == [True, False, False]


def test_env_advantages_are_aligned_to_tokens_and_masked():
    s1 = sequence([1, 2], [3, 4, 5], env_spans=((1, 2),))
    s2 = sequence([1, 2], [6])
    adv = [[9.0, 9.0, 0.5, 0.6, 0.7], [9.0, 9.0, -1.0]]
    b = convert([group([s1, s2], [1.0, 0.0], advantages=adv), simple_group(2)]).data.batch
    assert b["has_env_advantages"].tolist() == [True, True, False, False]
    assert b["env_advantages"][0, :3].tolist() == pytest.approx([0.5, 0.0, 0.7])
    assert b["env_advantages"][1, :2].tolist() == pytest.approx([-1.0, 0.0])
    assert b["env_advantages"][2:].abs().sum() == 0


def test_rollout_logprobs_drop_atropos_placeholder_ones():
    s = sequence([1, 2, 3], [4, 5, 6], env_spans=((1, 2),))
    b = convert([group([s, s], [1.0, 0.0])]).data.batch
    lp = b["rollout_log_probs"]
    assert lp.shape == b["responses"].shape
    assert lp[0, :3].tolist() == pytest.approx([-0.4, 0.0, -0.6])
    assert (lp[b["response_mask"] == 0] == 0).all()
    assert not (lp == 1.0).any()


def test_rollout_logprobs_only_when_every_sequence_has_them():
    without = simple_group(2)
    without.pop("inference_logprobs")
    assert "rollout_log_probs" not in convert([simple_group(2), without]).data.batch.keys()
    assert "rollout_log_probs" in convert([simple_group(2), simple_group(2)]).data.batch.keys()


def test_uid_per_group_unique_across_batches_and_env_id_kept():
    d1 = convert([simple_group(2, env_id=0), simple_group(3, env_id=1)]).data
    d2 = convert([simple_group(2, env_id=0)]).data
    uid = d1.non_tensor_batch["uid"]
    assert len(set(uid[:2])) == 1 and len(set(uid[2:])) == 1 and uid[0] != uid[2]
    assert not set(uid) & set(d2.non_tensor_batch["uid"])
    assert d1.non_tensor_batch["env_id"].tolist() == [0, 0, 1, 1, 1]


def _broken(**change):
    g = simple_group(2)
    g.update(change)
    return g


def _seq_variant(fn):
    g = simple_group(2)
    fn(g)
    return g


REJECTIONS = {
    Reason.EMPTY_GROUP: _broken(tokens=[], masks=[], scores=[], inference_logprobs=[]),
    Reason.MASKS_COUNT: _seq_variant(lambda g: g["masks"].pop()),
    Reason.MASK_LENGTH: _seq_variant(lambda g: g["masks"][1].pop()),
    Reason.LOGPROBS_COUNT: _seq_variant(lambda g: g["inference_logprobs"].pop()),
    Reason.LOGPROBS_LENGTH: _seq_variant(lambda g: g["inference_logprobs"][0].append(-1.0)),
    Reason.ADVANTAGES_COUNT: _broken(advantages=[[0.0] * 8]),
    Reason.ADVANTAGES_LENGTH: _broken(advantages=[[0.0] * 8, [0.0] * 7]),
    Reason.SCORES_COUNT: _broken(scores=[1.0]),
    Reason.SCORE_NOT_FINITE: _broken(scores=[math.nan, 1.0]),
    Reason.ADVANTAGE_NOT_FINITE: _broken(advantages=[[0.0] * 7 + [math.inf], [0.0] * 8]),
    Reason.BAD_TOKEN: _seq_variant(lambda g: g["tokens"][0].__setitem__(6, 1.5)),
    "negative_token": _seq_variant(lambda g: g["tokens"][1].__setitem__(0, -3)),
    Reason.MASK_NOT_TOKEN: _seq_variant(lambda g: g["masks"][0].__setitem__(6, 999)),
    Reason.NO_TRAINABLE: _seq_variant(lambda g: g["masks"].__setitem__(1, [-100] * 8)),
    Reason.NO_PROMPT: _seq_variant(lambda g: g["masks"].__setitem__(1, list(g["tokens"][1]))),
    Reason.OVERRIDES_LENGTH: _broken(overrides=[{}]),
    Reason.PROMPT_TOO_LONG: simple_group(2, prompt_len=40),
    Reason.RESPONSE_TOO_LONG: simple_group(2, resp_len=40),
}


@pytest.mark.parametrize("name", list(REJECTIONS))
def test_each_rejection_reason_rejects_only_its_group(name):
    expected = Reason.BAD_TOKEN if name == "negative_token" else name
    result = convert([simple_group(2), REJECTIONS[name], simple_group(3)], max_prompt=32, max_response=32)
    assert result.rejected == [(1, expected)]
    assert result.accepted == [0, 2]
    assert len(result.data) == 5


def test_all_rejected_raises_with_every_reason():
    with pytest.raises(ValueError) as err:
        convert([REJECTIONS[Reason.SCORES_COUNT], REJECTIONS[Reason.NO_TRAINABLE]])
    assert "group 0: scores_count_mismatch" in str(err.value)
    assert "group 1: no_trainable_token" in str(err.value)


# ---------------------------------------------------------------- what real environments send


def test_empty_lists_of_default_collect_trajectories_mean_absent():
    # atroposlib's default collect_trajectories posts [] for fields no item carried
    g = simple_group(4, advantages=[], overrides=[], ref_logprobs=[], images=[], messages=[], group_overrides={},
                     distill_token_ids=None, distill_logprobs=None)
    result = convert([g])
    assert result.rejected == []
    assert not result.data.batch["has_env_advantages"].any()
    g = simple_group(4, images=[None, None, None, None])
    assert convert([g]).rejected == []


@pytest.mark.parametrize("size", [2, 3, 5, 16])
def test_groups_of_any_size_convert(size):
    result = convert([simple_group(size), simple_group(4, base=30)])
    assert result.rejected == [] and len(result.data) == size + 4
    assert len(set(result.data.non_tensor_batch["uid"].tolist())) == 2


def test_a_single_sequence_group_needs_its_own_advantages():
    assert convert([simple_group(1), simple_group(4)]).rejected == [(0, Reason.SINGLETON)]
    alone = simple_group(1)
    alone["advantages"] = [[0.5] * len(alone["tokens"][0])]
    assert convert([alone]).rejected == []


def test_images_and_distillation_are_rejected_not_dropped():
    result = convert([simple_group(4, images=[["img"]] * 4), simple_group(4, base=30)])
    assert result.rejected == [(0, Reason.IMAGES)]
    g = simple_group(4, distill_token_ids=[[[1]]] * 4, distill_logprobs=[[[-0.1]]] * 4)
    assert convert([g, simple_group(4)]).rejected == [(0, Reason.DISTILLATION)]


def test_positive_logprobs_at_trained_positions_reject_the_group():
    bad = simple_group(4)
    bad["inference_logprobs"][0][-1] = 1.0  # ManagedServer's prompt padding value, here at a trained position
    result = convert([bad, simple_group(4, base=30)])
    assert result.rejected == [(0, Reason.LOGPROB_OUT_OF_RANGE)]
    assert "rollout_log_probs" in result.data.batch.keys()  # the other group's log-probs are kept
    good = simple_group(4)
    good["inference_logprobs"][1][-1] = 5e-5  # float noise above 0 is clamped, not rejected
    result = convert([good])
    assert result.rejected == [] and result.data.batch["rollout_log_probs"].max().item() <= 0.0


def _with(**changes):
    group = simple_group(4)
    for key, fn in changes.items():
        fn(group) if callable(fn) else group.__setitem__(key, fn)
    return group


LIMIT_VIOLATIONS = {
    "float32_overflowing_score": (_with(scores=[1e39, 0.0, 0.0, 0.0]), Reason.SCORE_OUT_OF_RANGE),
    "huge_score": (_with(scores=[1e7, 0.0, 0.0, 0.0]), Reason.SCORE_OUT_OF_RANGE),
    "huge_advantage": (_with(advantages=[[2e4] * 8] + [[0.0] * 8] * 3), Reason.ADVANTAGE_OUT_OF_RANGE),
    "float32_overflowing_advantage": (_with(advantages=[[1e39] * 8] + [[0.0] * 8] * 3), Reason.ADVANTAGE_NOT_FINITE),
    "logprob_far_below": (_with(x=lambda g: g["inference_logprobs"][0].__setitem__(-1, -1e9)),
                          Reason.LOGPROB_OUT_OF_RANGE),
    "tiny_temperature": (_with(generation_params={"temperature": 1e-30}), Reason.TEMPERATURE_OUT_OF_RANGE),
    "negative_temperature": (_with(group_overrides={"temperature": -1.0}), Reason.TEMPERATURE_OUT_OF_RANGE),
    "string_temperature": (_with(overrides=[{"temperature": "hot"}] + [{}] * 3), Reason.TEMPERATURE_OUT_OF_RANGE),
    "token_beyond_vocab": (_with(x=lambda g: g["tokens"][0].__setitem__(-1, 250)), Reason.TOKEN_OUT_OF_VOCAB),
    "string_env_id": (_with(env_id="0"), Reason.BAD_ENV_ID),
}


@pytest.mark.parametrize("name", sorted(LIMIT_VIOLATIONS))
def test_numbers_outside_the_limits_are_rejected(name):
    from atropos_verl.group_rules import Limits

    group, reason = LIMIT_VIOLATIONS[name]
    if name == "token_beyond_vocab":
        group["masks"][0][-1] = group["tokens"][0][-1]
    result = groups_to_dataproto([group, simple_group(4, base=30)], pad_token_id=0, max_prompt_length=32,
                                 max_response_length=32, limits=Limits(vocab_size=200))
    assert result.rejected == [(0, reason)]


def test_greedy_temperature_means_unstated_and_limits_come_from_config():
    from atropos_verl.group_rules import Limits

    result = convert([_with(generation_params={"temperature": 0})])
    assert result.rejected == [] and result.data.batch["temperature"].tolist() == [1.0] * 4
    assert Limits.from_mapping({"max_abs_score": 5.0}, vocab_size=None).max_abs_score == 5.0
    with pytest.raises(ValueError, match="max_abs_scor"):
        Limits.from_mapping({"max_abs_scor": 5.0})


def test_disagreeing_sampling_temperatures_are_rejected():
    from atropos_verl.wire import TEMPERATURES_SEEN_KEY

    g = simple_group(4, generation_params={TEMPERATURES_SEEN_KEY: [0.7, 1.0]})
    assert convert([g, simple_group(4)]).rejected == [(0, Reason.TEMPERATURE_AMBIGUOUS)]
    g = simple_group(4, generation_params={"temperature": 0.7})
    assert convert([g]).data.batch["temperature"].tolist() == pytest.approx([0.7] * 4)
