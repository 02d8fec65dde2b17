# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The rules every Atropos ScoredData group must pass before anything trains on it.

One implementation, two callers: the trajectory API's door (`api_side.gate`, which answers 4xx and never queues a
broken group) and the trainer (`trainer.batch`, the second line for an API started by someone else). numpy only, so
the API process never imports torch or verl.

* The response region of a sequence starts at its first position whose mask is not -100 and runs to the end; the
  prompt is everything before it. A group with any sequence over the prompt or response cap is rejected, never
  truncated: truncating would train on something other than what was rewarded.
* Every number must survive float32 (what the trainer computes in) and lie in a sane range (`Limits`): a score of
  1e39 is finite in float64 and inf in float32, and one inf poisons the loss of the whole batch.
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from atropos_verl.wire import TEMPERATURES_SEEN_KEY

IGNORE_INDEX = -100


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
    TOKEN_OUT_OF_VOCAB = "token_out_of_vocabulary"
    SCORE_OUT_OF_RANGE = "score_out_of_range"
    ADVANTAGE_OUT_OF_RANGE = "advantage_out_of_range"
    LOGPROB_OUT_OF_RANGE = "inference_logprob_out_of_range"
    TEMPERATURE_OUT_OF_RANGE = "temperature_out_of_range"
    BAD_ENV_ID = "bad_env_id"
    # Decided at the API's door, which knows what the API can pack (see api_side.gate).
    UNPACKABLE = "unpackable_group_size"
    # Decided by the trainer, which knows the policy version it is about to update (see trainer.staleness).
    STALE = "stale_policy_version"
    NO_POLICY_VERSION = "policy_version_missing"


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
#: (ManagedServer pads prompt positions with 1.0; at a trained position that would become an old log-prob).
LOGPROB_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Limits:
    """Ranges a group's numbers must lie in (the trainer's `atropos.limits`, the API door reads the same values).

    vocab_size: token ids must index the served model's embedding (None: unchecked, e.g. before the model is known).
    max_abs_score / max_abs_advantage: rewards and advantages beyond these are a bug, not a signal; they would
        dominate (or overflow) the loss of the whole batch.
    min_logprob: vLLM reports -inf as -9999; anything far below is not a log-probability.
    min_temperature / max_temperature: the sampling temperature divides the logits when the trainer recomputes
        log-probs; 1e-30 turns them into inf. 0 (greedy) means "not stated" and falls back to the default.
    """

    vocab_size: int | None = None
    max_abs_score: float = 1e6
    max_abs_advantage: float = 1e4
    min_logprob: float = -1e5
    min_temperature: float = 1e-2
    max_temperature: float = 100.0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None, **extra: Any) -> Limits:
        """From a config section; unknown keys raise (a typo must not silently fall back to a default)."""
        known = {f.name for f in fields(cls)}
        given = {**dict(values or {}), **extra}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ValueError(f"unknown limits {unknown}; known: {sorted(known)}")
        return cls(**{k: v for k, v in given.items() if v is not None or k == "vocab_size"})


DEFAULT_LIMITS = Limits()


def vocab_size_of(model_path: str) -> int | None:
    """Rows of the model's embedding (`vocab_size` in its config.json): the bound every token id must stay under.

    A local directory is read directly (the API process stays free of transformers); a hub id goes through
    transformers. None when it cannot be known, which leaves token ids unchecked against the vocabulary.
    """
    config = Path(model_path) / "config.json"
    try:
        if config.is_file():
            raw = json.loads(config.read_text(encoding="utf-8"))
        else:
            from transformers import AutoConfig

            raw = AutoConfig.from_pretrained(model_path).to_dict()
    except Exception:  # an unreadable config must not stop a run; the engine still bounds-checks
        return None
    size = raw.get("vocab_size") or (raw.get("text_config") or {}).get("vocab_size")
    return int(size) if isinstance(size, int) and size > 0 else None


def env_id_of(group: Any) -> Any:
    """The `env_id` a posted group carries (None for anything that is not a mapping, or has none)."""
    return group.get("env_id") if isinstance(group, Mapping) else None


def present(value: Any) -> bool:
    """Whether an optional ScoredData field carries data: None, [] and [None, ...] all mean absent."""
    if value is None:
        return False
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return any(v is not None for v in value)
    return True


@dataclass
class Group:
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


def flat_ints(rows: Sequence[Sequence[Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Flatten int rows; `array('q')` raises TypeError on floats/strings, so non-integers never slip through."""
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    flat = np.frombuffer(array("q", list(chain.from_iterable(rows))), dtype=np.int64)
    return flat, lengths


def flat_floats(rows: Sequence[Sequence[Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Flatten float rows into float32 (None becomes NaN and is caught by the finiteness checks)."""
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    with np.errstate(over="ignore"):  # an overflow becomes inf, which the finiteness checks reject
        flat = np.fromiter(chain.from_iterable(rows), dtype=np.float32, count=int(lengths.sum()))
    return flat, lengths


class _BadTemperature(ValueError):
    pass


def _temperature(value: Any, limits: Limits) -> float | None:
    """A stated temperature, None when absent or 0 (greedy: not a sampling temperature); raises when out of range."""
    if value is None or (not isinstance(value, bool) and isinstance(value, int | float) and value == 0):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _BadTemperature(value)
    t = float(value)
    if not (math.isfinite(t) and limits.min_temperature <= t <= limits.max_temperature):
        raise _BadTemperature(value)
    return t


def _out_of_range(values: np.ndarray, bound: float) -> bool:
    """Non-finite in float32 (a float64 1e39 is inf there) or beyond +-bound."""
    with np.errstate(over="ignore"):
        as32 = values.astype(np.float32)
    return not np.isfinite(as32).all() or bool(np.any(np.abs(values) > bound))


#: (count, length, not-a-number) reasons of the two per-token float fields.
LOGPROB_REASONS = (Reason.LOGPROBS_COUNT, Reason.LOGPROBS_LENGTH, Reason.LOGPROB_NOT_FINITE)
ADVANTAGE_REASONS = (Reason.ADVANTAGES_COUNT, Reason.ADVANTAGES_LENGTH, Reason.ADVANTAGE_NOT_FINITE)


def _per_token(rows: Sequence[Any], lengths: np.ndarray, reasons: tuple[str, str, str]) -> np.ndarray | str:
    """A per-token float field flattened to float32, or the reason it does not line up with the tokens."""
    count, length, not_a_number = reasons
    if len(rows) != lengths.size:
        return count
    try:
        flat, row_lengths = flat_floats(rows)
    except (TypeError, ValueError):
        return not_a_number
    return flat if np.array_equal(row_lengths, lengths) else length


def validate(
    index: int, group: Any, max_prompt: int, max_response: int, limits: Limits = DEFAULT_LIMITS
) -> Group | str:
    """Check one ScoredData group; return the flattened group or the name of the first broken rule."""
    if not isinstance(group, Mapping):
        return Reason.NOT_A_GROUP
    env_id = group.get("env_id")
    if env_id is not None and (isinstance(env_id, bool) or not isinstance(env_id, int) or env_id < 0):
        return Reason.BAD_ENV_ID
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
        flat_tokens, lengths = flat_ints(tokens)
    except (TypeError, OverflowError):
        return Reason.BAD_TOKEN
    try:
        flat_masks, mask_lengths = flat_ints(masks)
    except (TypeError, OverflowError):
        return Reason.MASK_NOT_TOKEN
    if not np.array_equal(lengths, mask_lengths):
        return Reason.MASK_LENGTH
    if flat_tokens.size and flat_tokens.min() < 0:
        return Reason.BAD_TOKEN
    if limits.vocab_size is not None and flat_tokens.size and flat_tokens.max() >= limits.vocab_size:
        return Reason.TOKEN_OUT_OF_VOCAB

    if any(isinstance(x, bool) or not isinstance(x, int | float) for x in scores):
        return Reason.SCORE_NOT_FINITE  # strict: "1.0" or True is a bug in the environment, not a score
    try:
        score_arr = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        return Reason.SCORE_NOT_FINITE
    if score_arr.shape != (n,) or not np.isfinite(score_arr).all():
        return Reason.SCORE_NOT_FINITE
    if _out_of_range(score_arr, limits.max_abs_score):
        return Reason.SCORE_OUT_OF_RANGE

    trainable = flat_masks != IGNORE_INDEX
    if np.any(flat_masks[trainable] != flat_tokens[trainable]):
        return Reason.MASK_NOT_TOKEN

    starts, first, ends = region_bounds(trainable, lengths)
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
    if present(group.get("inference_logprobs")):
        logprobs = _per_token(group["inference_logprobs"], lengths, LOGPROB_REASONS)
        if isinstance(logprobs, str):
            return logprobs
        lp = logprobs[trainable]
        if not np.isfinite(lp).all():
            return Reason.LOGPROB_NOT_FINITE
        if np.any(lp > LOGPROB_TOLERANCE) or np.any(lp < limits.min_logprob):
            return Reason.LOGPROB_OUT_OF_RANGE
        logprobs = np.minimum(logprobs, 0.0)

    advantages = None
    if present(group.get("advantages")):
        advantages = _per_token(group["advantages"], lengths, ADVANTAGE_REASONS)
        if isinstance(advantages, str):
            return advantages
        adv = advantages[trainable]
        if not np.isfinite(adv).all():
            return Reason.ADVANTAGE_NOT_FINITE
        if np.any(np.abs(adv) > limits.max_abs_advantage):
            return Reason.ADVANTAGE_OUT_OF_RANGE

    overrides = group.get("overrides") if present(group.get("overrides")) else None
    if overrides is not None and (not isinstance(overrides, Sequence) or len(overrides) != n):
        return Reason.OVERRIDES_LENGTH
    overrides = overrides or [None] * n
    params = group.get("generation_params")
    if isinstance(params, Mapping) and params.get(TEMPERATURES_SEEN_KEY) and params.get("temperature") is None:
        return Reason.TEMPERATURE_AMBIGUOUS

    # Temperature precedence: per-item override > generation_params > group_overrides > 1.0
    try:
        group_t = 1.0
        for source in (group.get("group_overrides"), group.get("generation_params")):
            if isinstance(source, Mapping) and (t := _temperature(source.get("temperature"), limits)) is not None:
                group_t = t
        temperature = np.full(n, group_t, dtype=np.float32)
        zero_adv = np.zeros(n, dtype=bool)
        for i, item in enumerate(overrides):
            if isinstance(item, Mapping):
                if (t := _temperature(item.get("temperature"), limits)) is not None:
                    temperature[i] = t
                zero_adv[i] = bool(item.get("set_advantage_to_zero", False))
    except _BadTemperature:
        return Reason.TEMPERATURE_OUT_OF_RANGE

    return Group(
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
    )


def longest_regions(group: Any) -> tuple[int, int] | None:
    """Longest prompt and longest response of a group, in tokens, split as `validate` splits them; None when the group
    is too broken to split (a rejection message quotes these for the length rules)."""
    try:
        flat_tokens, lengths = flat_ints(group["tokens"])
        flat_masks, mask_lengths = flat_ints(group["masks"])
    except (KeyError, TypeError, OverflowError):
        return None
    if not lengths.size or not np.array_equal(lengths, mask_lengths):
        return None
    starts, first, ends = region_bounds(flat_masks != IGNORE_INDEX, lengths)
    if np.any(first < 0):
        return None
    return int((first - starts).max()), int((ends - first).max())


def length_detail(reason: str, group: Any, max_prompt: int, max_response: int) -> str:
    """For a prompt/response length rejection, the lengths against the caps it broke ("" for any other reason)."""
    if reason not in (Reason.PROMPT_TOO_LONG, Reason.RESPONSE_TOO_LONG):
        return ""
    regions = longest_regions(group)
    if regions is None:
        return ""
    if reason == Reason.PROMPT_TOO_LONG:
        return f"longest prompt {regions[0]} tokens > data.max_prompt_length={max_prompt}"
    return f"longest response {regions[1]} tokens > data.max_response_length={max_response}"


def region_bounds(trainable: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sequence of a flat buffer: its start, its first trainable position (the response's start; -1 when it has
    none) and its end. The prompt is [start, first), the response [first, end)."""
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    ends = starts + lengths
    return starts, first_true(trainable, starts, ends), ends


def first_true(flags: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Index (into the flat array) of the first True in each [start, end) segment, or -1."""
    hits = np.flatnonzero(flags)
    pos = np.searchsorted(hits, starts)
    found = pos < hits.size
    first = np.full(starts.shape, -1, dtype=np.int64)
    candidate = hits[np.minimum(pos, max(hits.size - 1, 0))] if hits.size else np.zeros_like(starts)
    ok = found & (candidate < ends)
    first[ok] = candidate[ok]
    return first


