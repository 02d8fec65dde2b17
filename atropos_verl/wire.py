# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Names the environment side writes into posted groups and the trainer reads back (kept import-light: both the env
processes and the trainer import it)."""

#: `generation_params` key listing the temperatures one rollout task sampled at when the environment reported none
#: and they disagreed; the trainer rejects such a group as `temperature_ambiguous`.
TEMPERATURES_SEEN_KEY = "atropos_verl_temperatures_seen"
