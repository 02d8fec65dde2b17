# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Stamp each posted group with the temperature its completions were really sampled at (and bound each request's
`max_tokens`: `token_budget`).

The trainer computes log-probs (actor, bypass-mode old log-probs, IS ratios) at each sequence's sampling temperature,
which it reads from the group (`overrides`, `generation_params`, `group_overrides`). Most environments pass
`temperature=` to the server and report nothing. The temperatures of a rollout task's requests are collected in its
`rollout_task.TaskRecord` and written into `generation_params.temperature` of the groups it posts, unless the
environment reported one itself. Requests without a temperature sample at the server's default: verl starts its
servers with `actor_rollout_ref.rollout.temperature` as the default (vLLM's `override_generation_config`), which the
launcher passes as `$ATROPOS_VERL_SERVER_TEMPERATURE`; without it, the model's `generation_config.json` temperature,
else 1.0. When one task sampled at
several temperatures and reported none, the group carries the temperatures seen and the trainer rejects it as
`temperature_ambiguous` rather than guess. Greedy requests (temperature 0) are left out: they are probes or judges,
never a temperature log-probs can be computed at.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from atropos_verl.env_side import rollout_task, token_budget
from atropos_verl.env_side.patching import wrap_method
from atropos_verl.wire import TEMPERATURES_SEEN_KEY

#: The default temperature of the servers this process is routed to (set by the launcher from verl's config).
SERVER_TEMPERATURE_ENV = "ATROPOS_VERL_SERVER_TEMPERATURE"

SERVER_CALLS = ("chat_completion", "completion", "tokens_and_logprobs_completion")


@lru_cache(maxsize=8)
def server_default_temperature(model_path: str | None) -> float:
    """The temperature a server applies to requests that name none (see the module docstring)."""
    configured = os.environ.get(SERVER_TEMPERATURE_ENV)
    if configured:
        return float(configured)
    if model_path:
        path = Path(model_path) / "generation_config.json"
        try:
            value = json.loads(path.read_text(encoding="utf-8")).get("temperature")
            if value is not None and float(value) > 0:
                return float(value)
        except (OSError, ValueError, TypeError):
            pass
    return 1.0


def reported_temperature(group: Mapping[str, Any]) -> bool:
    """Whether the environment itself said what every sequence of the group was sampled at."""
    for key in ("generation_params", "group_overrides"):
        source = group.get(key)
        if isinstance(source, Mapping) and source.get("temperature") is not None:
            return True
    overrides = group.get("overrides")
    return bool(overrides) and all(isinstance(o, Mapping) and o.get("temperature") is not None for o in overrides)


def stamp(group: dict[str, Any], seen: list[float | None], default: float) -> None:
    """Write what the requests of this group's task were sampled at into `generation_params` (see module doc)."""
    if not seen or reported_temperature(group):
        return
    # Greedy requests (temperature 0: probes, judges, self-checks inside a rollout) sample nothing the trainer could
    # compute log-probs for, so they cannot be what a trained sequence was sampled at.
    temps = sorted({default if t is None else float(t) for t in seen if t is None or float(t) > 0})
    if not temps:
        return
    params = dict(group.get("generation_params") or {})
    if len(temps) == 1:
        params["temperature"] = temps[0]
    else:
        params[TEMPERATURES_SEEN_KEY] = temps
    group["generation_params"] = params


def _stamp_task(group: dict[str, Any], record: rollout_task.TaskRecord, env: Any) -> None:
    if record.temperatures:
        stamp(group, record.temperatures, server_default_temperature(getattr(env.config, "tokenizer_name", None)))


def install() -> None:
    from atroposlib.envs.server_handling.server_baseline import APIServer

    def make_call(call):
        async def wrapper(self, **kwargs):
            token_budget.clamp(kwargs)
            record = rollout_task.current()
            if record is not None and kwargs.get("split", "train") == "train":
                record.temperatures.append(kwargs.get("temperature"))
            return await call(self, **kwargs)

        return wrapper

    rollout_task.install()
    rollout_task.add_stamper(_stamp_task)
    for name in SERVER_CALLS:
        wrap_method(APIServer, name, make_call)
