# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Atropos ScoredData groups -> one verl DataProto.

This module decides what the model is trained on. Each group first passes `group_rules.validate` (the same rules
the API's door applies); a group that fails is rejected with a named reason and the rest of the batch still converts.
Inside the response region only positions with mask != -100 are trained on, so environment/tool tokens interleaved in
a multi-turn completion get no gradient.

Everything is vectorised with numpy over a flat token array: batches of 1,000+ sequences x thousands of tokens are
normal, so there is no per-token Python loop.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from verl import DataProto

from atropos_verl.group_rules import (  # noqa: F401 - Reason, present: re-exported for callers of the data path
    DEFAULT_LIMITS,
    IGNORE_INDEX,
    Group,
    Limits,
    Reason,
    present,
    region_bounds,
    validate,
)

PAD_MULTIPLE = 8


class AllGroupsRejected(ValueError):
    """No group of a batch survived validation; `rejected` holds one (group_index, reason) per group."""

    def __init__(self, rejected: list[tuple[int, str]]):
        self.rejected = rejected
        detail = "; ".join(f"group {i}: {r}" for i, r in rejected) or "no groups given"
        super().__init__(f"every Atropos group was rejected ({detail})")


@dataclass
class ConversionResult:
    """What `groups_to_dataproto` returns: the batch and one (group_index, reason) per rejected group."""

    data: DataProto | None
    rejected: list[tuple[int, str]] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)


def _round_up(n: int, multiple: int, cap: int) -> int:
    return min(max(multiple, -(-n // multiple) * multiple), cap) if n > 0 else min(multiple, cap)


def groups_to_dataproto(
    groups: Sequence[Mapping[str, Any]],
    *,
    pad_token_id: int,
    max_prompt_length: int,
    max_response_length: int,
    limits: Limits = DEFAULT_LIMITS,
) -> ConversionResult:
    """Convert Atropos ScoredData groups into a verl DataProto.

    Tensors: input_ids, attention_mask, position_ids, prompts, responses, response_mask, token_level_scores,
    temperature, zero_advantage, has_env_advantages, env_advantages, and rollout_log_probs when every sequence of
    the batch carries inference_logprobs. Non-tensors: uid (one per group, unique across batches) and env_id.
    Raises AllGroupsRejected (a ValueError listing every reason) when no group survives validation.
    """
    rejected: list[tuple[int, str]] = []
    valid: list[Group] = []
    for i, group in enumerate(groups):
        checked = validate(i, group, max_prompt_length, max_response_length, limits)
        if isinstance(checked, str):
            rejected.append((i, checked))
        else:
            valid.append(checked)
    if not valid:
        raise AllGroupsRejected(rejected)

    tokens = np.concatenate([g.tokens for g in valid])
    masks = np.concatenate([g.masks for g in valid])
    lengths = np.concatenate([g.lengths for g in valid])
    starts, first, ends = region_bounds(masks != IGNORE_INDEX, lengths)
    prompt_len = first - starts
    resp_len = ends - first
    batch = lengths.size

    width_p = _round_up(int(prompt_len.max()), PAD_MULTIPLE, max_prompt_length)
    width_r = _round_up(int(resp_len.max()), PAD_MULTIPLE, max_response_length)
    last = max(tokens.size - 1, 0)

    # Prompts, left-padded: column j holds token (first - width_p + j) when that lies inside the prompt.
    p_src = first[:, None] - width_p + np.arange(width_p)[None, :]
    p_valid = p_src >= starts[:, None]
    p_src = np.clip(p_src, 0, last)
    prompts = np.where(p_valid, tokens[p_src], pad_token_id)

    # Responses, right-padded: column j holds token (first + j) while inside the sequence.
    r_src = first[:, None] + np.arange(width_r)[None, :]
    r_valid = r_src < ends[:, None]
    r_src = np.clip(r_src, 0, last)
    responses = np.where(r_valid, tokens[r_src], pad_token_id)
    response_mask = r_valid & (masks[r_src] != IGNORE_INDEX)

    attention_mask = np.concatenate([p_valid, r_valid], axis=1)
    position_ids = np.clip(np.cumsum(attention_mask, axis=1) - 1, 0, None)

    # Outcome score at the last trainable position of each response.
    scores = np.concatenate([g.scores for g in valid]).astype(np.float32)
    last_trainable = width_r - 1 - np.argmax(response_mask[:, ::-1], axis=1)
    token_level_scores = np.zeros((batch, width_r), dtype=np.float32)
    token_level_scores[np.arange(batch), last_trainable] = scores

    sizes = [g.lengths.size for g in valid]
    has_env_adv = np.repeat([g.advantages is not None for g in valid], sizes)
    flat_adv = np.concatenate(
        [g.advantages if g.advantages is not None else np.zeros(g.tokens.size, np.float32) for g in valid]
    )
    env_adv = np.where(response_mask & has_env_adv[:, None], flat_adv[r_src], 0.0).astype(np.float32)

    tensors: dict[str, torch.Tensor] = {
        "input_ids": torch.from_numpy(np.concatenate([prompts, responses], axis=1).astype(np.int64)),
        "attention_mask": torch.from_numpy(attention_mask.astype(np.int64)),
        "position_ids": torch.from_numpy(position_ids.astype(np.int64)),
        "prompts": torch.from_numpy(prompts.astype(np.int64)),
        "responses": torch.from_numpy(responses.astype(np.int64)),
        "response_mask": torch.from_numpy(response_mask.astype(np.int64)),
        "token_level_scores": torch.from_numpy(token_level_scores),
        "temperature": torch.from_numpy(np.concatenate([g.temperature for g in valid])),
        "zero_advantage": torch.from_numpy(np.concatenate([g.zero_advantage for g in valid])),
        "has_env_advantages": torch.from_numpy(has_env_adv),
        "env_advantages": torch.from_numpy(env_adv),
    }
    if all(g.logprobs is not None for g in valid):
        flat_lp = np.concatenate([g.logprobs for g in valid])
        # Atropos writes 1.0 at masked positions: only trainable positions carry a real log-prob.
        tensors["rollout_log_probs"] = torch.from_numpy(np.where(response_mask, flat_lp[r_src], 0.0).astype(np.float32))

    uids = np.concatenate([np.full(g.lengths.size, uuid.uuid4().hex, dtype=object) for g in valid])
    env_ids = np.concatenate([np.full(g.lengths.size, g.env_id, dtype=object) for g in valid])
    data = DataProto.from_dict(tensors=tensors, non_tensors={"uid": uids, "env_id": env_ids})
    return ConversionResult(
        data=data,
        rejected=rejected,
        accepted=[g.index for g in valid],
    )
