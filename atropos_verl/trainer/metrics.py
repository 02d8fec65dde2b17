# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Atropos-specific step metrics, next to verl's `compute_data_metrics` / `compute_timing_metrics`.

verl's helpers know nothing about environments or about where the step's wall time goes when generation happens
outside the trainer, so these add: per-environment score and group count, rejected groups by reason, and the split of
a step into waiting on `/batch`, training and weight sync.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from verl import DataProto

from atropos_verl.group_rules import env_id_of

# timing_raw keys (verl's `marked_timer` names) that make up each part of a step. Waiting is generation the trainer
# did not overlap: polling `/batch`, and the part of the drain spent letting running requests finish (`drain_wait`,
# split off `drain` by `split_drain`).
WAIT_KEYS = ("wait_batch", "drain_wait")
SYNC_KEYS = ("drain", "sleep_replicas", "update_weights")
#: The integration's own work in a step: turning the API's groups into a batch, asking the API and the servers for
#: their counters, and the drained weight sync. What is left of a step after these, the wait and verl's parts is also
#: ours (the loop's glue) and is counted with them.
OURS_KEYS = ("convert", "api_status", "served_stats", *SYNC_KEYS)
#: verl's own passes on the batch, and the bookkeeping its own trainer does on every step (batch balancing, metrics).
VERL_KEYS = ("balance_batch", "old_log_prob", "ref", "adv", "update_actor", "data_metrics", "save_checkpoint")


def env_label(env_id: object) -> str:
    return "unknown" if env_id is None else str(env_id)


def group_metrics(data: DataProto, *, received: int, rejected: Mapping[str, int]) -> dict[str, float]:
    """Per-env mean sequence score, groups and response length; batch-level received/accepted/rejected counts."""
    scores = data.batch["token_level_scores"].sum(-1).float().numpy()
    resp_len = data.batch["response_mask"].sum(-1).float().numpy()
    key = "env_name" if "env_name" in data.non_tensor_batch else "env_id"
    env_ids = np.array([env_label(e) for e in data.non_tensor_batch[key]], dtype=object)
    uids = data.non_tensor_batch["uid"]
    out: dict[str, float] = {
        "atropos/groups_received": float(received),
        "atropos/groups_accepted": float(len(set(uids.tolist()))),
        "atropos/groups_rejected": float(sum(rejected.values())),
    }
    for reason, count in rejected.items():
        out[f"atropos/rejected/{reason}"] = float(count)
    for env in sorted(set(env_ids.tolist())):
        sel = env_ids == env
        out[f"atropos/env/{env}/score_mean"] = float(scores[sel].mean())
        out[f"atropos/env/{env}/groups"] = float(len(set(uids[sel].tolist())))
        out[f"atropos/env/{env}/response_length_mean"] = float(resp_len[sel].mean())
        out[f"atropos/env/{env}/batch_share"] = float(sel.sum()) / len(env_ids)
    return out


def rejected_by_env(
    groups: Sequence[Any], rejected: Sequence[tuple[int, str]], env_name: Callable[[Any], str]
) -> Counter[str]:
    """Quarantined groups of one step per environment name."""
    counts: Counter[str] = Counter()
    for index, _ in rejected:
        group = groups[index]
        counts[env_name(env_id_of(group))] += 1
    return counts


def rejection_metrics(by_env: Mapping[str, int]) -> dict[str, float]:
    return {f"atropos/env/{env}/groups_rejected": float(n) for env, n in by_env.items()}


def split_drain(timing_raw: dict[str, float], waited: float) -> None:
    """Move the drain's wait for running requests (`sync/drain_wait_seconds`, measured in the servers) from `drain`
    to `drain_wait`, so `drain` is what the pause itself cost: Ray calls and pausing the engines."""
    drain = float(timing_raw.get("drain", 0.0))
    wait = min(max(float(waited), 0.0), drain)
    timing_raw["drain"] = drain - wait
    timing_raw["drain_wait"] = float(timing_raw.get("drain_wait", 0.0)) + wait


def time_split(timing_raw: Mapping[str, float]) -> dict[str, float]:
    """Seconds of the step spent waiting for a batch, syncing weights (drain + sleep + update), and training."""
    wait = sum(float(timing_raw.get(k, 0.0)) for k in WAIT_KEYS)
    sync = sum(float(timing_raw.get(k, 0.0)) for k in SYNC_KEYS)
    step = float(timing_raw.get("step", wait + sync))
    return {
        "timing_s/atropos_wait": wait,
        "timing_s/sync": sync,
        "timing_s/train": max(step - wait - sync, 0.0),
        "atropos/idle_fraction": wait / step if step > 0 else 0.0,
        **step_breakdown(timing_raw),
    }


def step_breakdown(timing_raw: Mapping[str, float]) -> dict[str, float]:
    """A step split into waiting for the batch, verl's passes and the integration's own work (named parts plus the
    unnamed rest); `atropos/integration_share` is the last over the step."""
    step = float(timing_raw.get("step", 0.0))
    wait = sum(float(timing_raw.get(k, 0.0)) for k in WAIT_KEYS)
    verl = sum(float(timing_raw.get(k, 0.0)) for k in VERL_KEYS)
    named = sum(float(timing_raw.get(k, 0.0)) for k in OURS_KEYS)
    rest = max(step - wait - verl - named, 0.0)
    return {
        "timing_s/verl": verl,
        "timing_s/integration": named + rest,
        "timing_s/integration_unnamed": rest,
        "atropos/integration_share": (named + rest) / step if step > 0 else 0.0,
    }


def temperature_metrics(data: DataProto) -> dict[str, float]:
    """Spread of per-sequence sampling temperatures (several envs may sample at different temperatures)."""
    temps = data.batch["temperature"].float()
    return {"atropos/temperature_min": float(temps.min()), "atropos/temperature_max": float(temps.max())}
