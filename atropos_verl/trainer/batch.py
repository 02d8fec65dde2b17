# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Atropos ScoredData groups -> one verl DataProto.

This module decides what the model is trained on, so its rules are strict:

* The response region of a sequence starts at its first position whose mask is not -100 and runs to the end; the
  prompt is everything before it. Inside the response region only positions with mask != -100 are trained on, so
  environment/tool tokens interleaved in a multi-turn completion get no gradient.
* A group with any sequence over the prompt or response cap is rejected, never truncated: truncating would train on
  something other than what was rewarded.
* Malformed groups are rejected with a named reason; the rest of the batch still converts.

Everything is vectorised with numpy over a flat token array: batches of 1,000+ sequences x thousands of tokens are
normal, so there is no per-token Python loop.
"""

from __future__ import annotations

import math
import uuid
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np
import torch
from verl import DataProto

from atropos_verl.wire import TEMPERATURES_SEEN_KEY

IGNORE_INDEX = -100
PAD_MULTIPLE = 8


class Reason:
    """Names of rejection reasons (stable strings: they land in metrics and the quarantine file)."""

    EMPTY_GROUP = "empty_group"
    NOT_A_GROUP = "malformed_group"
    MASKS_COUNT = "masks_count_mismatch"
    MASK_LENGTH = "mask_length_mismatch"
    LOGPROBS_COUNT = "inference_logprobs_count_mismatch"
    LOGPROBS_LENGTH = "inference_logprobs_length_mismatch"
    ADVANTAGES_COUNT = "advantages_count_mismatch"
    ADVANTAGES_LENGTH = "advantages_length_mismatch"
    SCORES_COUNT = "scores_count_mismatch"
    SCORE_NOT_FINITE = "score_not_finite"
    ADVANTAGE_NOT_FINITE = "advantage_not_finite"
    LOGPROB_NOT_FINITE = "inference_logprob_not_finite"
    BAD_TOKEN = "non_integer_or_negative_token"
    MASK_NOT_TOKEN = "mask_differs_from_token"
    NO_TRAINABLE = "no_trainable_token"
    NO_PROMPT = "empty_prompt"
    OVERRIDES_LENGTH = "overrides_length_mismatch"
    PROMPT_TOO_LONG = "prompt_too_long"
    RESPONSE_TOO_LONG = "response_too_long"
    IMAGES = "unsupported_images"
    DISTILLATION = "unsupported_distillation"
    TEMPERATURE_AMBIGUOUS = "temperature_ambiguous"
    SINGLETON = "single_sequence_group_without_advantages"


#: Per-sequence fields that atroposlib's default `collect_trajectories` sends as `[]` when no item carried them.
#: An empty list (or a list of only None) means "absent", never "zero sequences".
OPTIONAL_SEQUENCE_FIELDS = (
    "advantages",
    "overrides",
    "ref_logprobs",
    "inference_logprobs",
    "images",
    "distill_token_ids",
    "distill_logprobs",
)

#: A sampled token's log-probability is <= 0; this much above 0 is float noise, more is an impossible value
#: (ManagedServer pads missing positions with 1.0, which must never become an old log-prob).
LOGPROB_TOLERANCE = 1e-4



def present(value: Any) -> bool:
    """Whether an optional ScoredData field carries data: None, [] and [None, ...] all mean absent."""
    if value is None:
        return False
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return any(v is not None for v in value)
    return True


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
    #: Accepted groups whose inference_logprobs held impossible values (> 0 at a trained position) and were dropped.
    logprobs_discarded: list[int] = field(default_factory=list)


@dataclass
class _Group:
    """A validated group, flattened: per-sequence arrays live in one flat buffer with offsets."""

    index: int
    tokens: np.ndarray  # flat int64
    masks: np.ndarray  # flat int64
    lengths: np.ndarray  # [n]
    scores: np.ndarray  # [n] float64
    logprobs: np.ndarray | None  # flat float32
    advantages: np.ndarray | None  # flat float32
    temperature: np.ndarray  # [n] float32
    zero_advantage: np.ndarray  # [n] bool
    env_id: Any
    logprobs_discarded: bool = False


def _round_up(n: int, multiple: int, cap: int) -> int:
    return min(max(multiple, -(-n // multiple) * multiple), cap) if n > 0 else min(multiple, cap)


def _flat_ints(rows: Sequence[Sequence[Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Flatten int rows; `array('q')` raises TypeError on floats/strings, so non-integers never slip through."""
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    flat = np.frombuffer(array("q", list(chain.from_iterable(rows))), dtype=np.int64)
    return flat, lengths


def _flat_floats(rows: Sequence[Sequence[Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Flatten float rows into float32 (None becomes NaN and is caught by the finiteness checks)."""
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    flat = np.fromiter(chain.from_iterable(rows), dtype=np.float32, count=int(lengths.sum()))
    return flat, lengths


def _temperature(value: Any) -> float | None:
    try:
        t = float(value)
    except (TypeError, ValueError):
        return None
    return t if math.isfinite(t) and t > 0 else None


def _validate(index: int, group: Any, max_prompt: int, max_response: int) -> _Group | str:
    """Check one ScoredData group; return the flattened group or the name of the first broken rule."""
    if not isinstance(group, Mapping):
        return Reason.NOT_A_GROUP
    tokens = group.get("tokens")
    masks = group.get("masks")
    scores = group.get("scores")
    if not tokens:
        return Reason.EMPTY_GROUP
    n = len(tokens)
    if masks is None or len(masks) != n:
        return Reason.MASKS_COUNT
    if scores is None or len(scores) != n:
        return Reason.SCORES_COUNT
    try:
        flat_tokens, lengths = _flat_ints(tokens)
    except (TypeError, OverflowError):
        return Reason.BAD_TOKEN
    try:
        flat_masks, mask_lengths = _flat_ints(masks)
    except (TypeError, OverflowError):
        return Reason.MASK_NOT_TOKEN
    if not np.array_equal(lengths, mask_lengths):
        return Reason.MASK_LENGTH
    if flat_tokens.size and flat_tokens.min() < 0:
        return Reason.BAD_TOKEN

    try:
        score_arr = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        return Reason.SCORE_NOT_FINITE
    if score_arr.shape != (n,) or not np.isfinite(score_arr).all():
        return Reason.SCORE_NOT_FINITE

    trainable = flat_masks != IGNORE_INDEX
    if np.any(flat_masks[trainable] != flat_tokens[trainable]):
        return Reason.MASK_NOT_TOKEN

    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    ends = starts + lengths
    first = _first_true(trainable, starts, ends)
    if np.any(first < 0):
        return Reason.NO_TRAINABLE
    prompt_len = first - starts
    if np.any(prompt_len == 0):
        return Reason.NO_PROMPT
    if prompt_len.max() > max_prompt:
        return Reason.PROMPT_TOO_LONG
    if (ends - first).max() > max_response:
        return Reason.RESPONSE_TOO_LONG

    if n == 1 and not present(group.get("advantages")):
        # GRPO's baseline is the group mean: one sequence alone carries no learning signal (verl would train on its
        # raw score). Size-1 groups train only with the environment's own advantages.
        return Reason.SINGLETON
    if present(group.get("images")):
        return Reason.IMAGES
    if present(group.get("distill_token_ids")) or present(group.get("distill_logprobs")):
        return Reason.DISTILLATION

    logprobs = None
    logprobs_discarded = False
    if present(group.get("inference_logprobs")):
        lp_rows = group["inference_logprobs"]
        if len(lp_rows) != n:
            return Reason.LOGPROBS_COUNT
        try:
            logprobs, lp_lengths = _flat_floats(lp_rows)
        except (TypeError, ValueError):
            return Reason.LOGPROB_NOT_FINITE
        if not np.array_equal(lp_lengths, lengths):
            return Reason.LOGPROBS_LENGTH
        if not np.isfinite(logprobs[trainable]).all():
            return Reason.LOGPROB_NOT_FINITE
        if np.any(logprobs[trainable] > LOGPROB_TOLERANCE):
            # Not a log-probability: the group still trains, with log-probs recomputed by the actor.
            logprobs, logprobs_discarded = None, True
        else:
            logprobs = np.minimum(logprobs, 0.0)

    advantages = None
    if present(group.get("advantages")):
        adv_rows = group["advantages"]
        if len(adv_rows) != n:
            return Reason.ADVANTAGES_COUNT
        try:
            advantages, adv_lengths = _flat_floats(adv_rows)
        except (TypeError, ValueError):
            return Reason.ADVANTAGE_NOT_FINITE
        if not np.array_equal(adv_lengths, lengths):
            return Reason.ADVANTAGES_LENGTH
        if not np.isfinite(advantages[trainable]).all():
            return Reason.ADVANTAGE_NOT_FINITE

    overrides = group.get("overrides") if present(group.get("overrides")) else None
    if overrides is not None and (not isinstance(overrides, Sequence) or len(overrides) != n):
        return Reason.OVERRIDES_LENGTH
    overrides = overrides or [None] * n
    params = group.get("generation_params")
    if isinstance(params, Mapping) and params.get(TEMPERATURES_SEEN_KEY) and params.get("temperature") is None:
        return Reason.TEMPERATURE_AMBIGUOUS

    # Temperature precedence: per-item override > generation_params > group_overrides > 1.0
    group_t = 1.0
    for source in (group.get("group_overrides"), group.get("generation_params")):
        if isinstance(source, Mapping) and _temperature(source.get("temperature")) is not None:
            group_t = _temperature(source["temperature"])
    temperature = np.full(n, group_t, dtype=np.float32)
    zero_adv = np.zeros(n, dtype=bool)
    for i, item in enumerate(overrides):
        if isinstance(item, Mapping):
            t = _temperature(item.get("temperature"))
            if t is not None:
                temperature[i] = t
            zero_adv[i] = bool(item.get("set_advantage_to_zero", False))

    return _Group(
        index=index,
        tokens=flat_tokens,
        masks=flat_masks,
        lengths=lengths,
        scores=score_arr,
        logprobs=logprobs,
        advantages=advantages,
        temperature=temperature,
        zero_advantage=zero_adv,
        env_id=group.get("env_id"),
        logprobs_discarded=logprobs_discarded,
    )


def _first_true(flags: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Index (into the flat array) of the first True in each [start, end) segment, or -1."""
    hits = np.flatnonzero(flags)
    pos = np.searchsorted(hits, starts)
    found = pos < hits.size
    first = np.full(starts.shape, -1, dtype=np.int64)
    candidate = hits[np.minimum(pos, max(hits.size - 1, 0))] if hits.size else np.zeros_like(starts)
    ok = found & (candidate < ends)
    first[ok] = candidate[ok]
    return first


def groups_to_dataproto(
    groups: Sequence[Mapping[str, Any]],
    *,
    pad_token_id: int,
    max_prompt_length: int,
    max_response_length: int,
) -> ConversionResult:
    """Convert Atropos ScoredData groups into a verl DataProto.

    Tensors: input_ids, attention_mask, position_ids, prompts, responses, response_mask, token_level_scores,
    temperature, zero_advantage, has_env_advantages, env_advantages, and rollout_log_probs when every sequence of
    the batch carries inference_logprobs. Non-tensors: uid (one per group, unique across batches) and env_id.
    Raises AllGroupsRejected (a ValueError listing every reason) when no group survives validation.
    """
    rejected: list[tuple[int, str]] = []
    valid: list[_Group] = []
    for i, group in enumerate(groups):
        checked = _validate(i, group, max_prompt_length, max_response_length)
        if isinstance(checked, str):
            rejected.append((i, checked))
        else:
            valid.append(checked)
    if not valid:
        raise AllGroupsRejected(rejected)

    tokens = np.concatenate([g.tokens for g in valid])
    masks = np.concatenate([g.masks for g in valid])
    lengths = np.concatenate([g.lengths for g in valid])
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    ends = starts + lengths
    first = _first_true(masks != IGNORE_INDEX, starts, ends)
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
        logprobs_discarded=[g.index for g in valid if g.logprobs_discarded],
    )
