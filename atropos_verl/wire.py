# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Names the environment side writes into posted groups and the trainer reads back (kept import-light: both the env
processes and the trainer import it)."""

#: `generation_params` key listing the temperatures one rollout task sampled at when the environment reported none
#: and they disagreed; the trainer rejects such a group as `temperature_ambiguous`.
TEMPERATURES_SEEN_KEY = "atropos_verl_temperatures_seen"

#: Response header the rollout servers put on every answer: the policy version (the trainer step whose weights they
#: serve). No request runs across a weight push (pushes are drained), so the value at response time is the version
#: that generated the whole completion.
POLICY_VERSION_HEADER = "x-atropos-policy-version"

#: `generation_params` key of a posted group: the oldest policy version among the completions of its rollout task.
POLICY_VERSION_KEY = "atropos_verl_policy_version"
