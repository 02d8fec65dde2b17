# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The temperature a group was sampled at reaches the trainer even when the environment does not report it."""

from __future__ import annotations

import json

from atropos_verl.env_side.sampling import reported_temperature, server_default_temperature, stamp
from atropos_verl.wire import TEMPERATURES_SEEN_KEY


def _group(**extra):
    return {"tokens": [[1, 2]], "masks": [[-100, 2]], "scores": [1.0], **extra}


def test_one_requested_temperature_is_stamped():
    g = _group(generation_params={"max_tokens": 8})
    stamp(g, [0.7, 0.7], default=1.0)
    assert g["generation_params"] == {"max_tokens": 8, "temperature": 0.7}


def test_requests_without_temperature_use_the_server_default(tmp_path, monkeypatch):
    monkeypatch.setenv("ATROPOS_VERL_SERVER_TEMPERATURE", "0.9")
    assert server_default_temperature.__wrapped__(str(tmp_path)) == 0.9  # verl's rollout.temperature wins
    monkeypatch.delenv("ATROPOS_VERL_SERVER_TEMPERATURE")
    (tmp_path / "generation_config.json").write_text(json.dumps({"temperature": 0.6}))
    assert server_default_temperature.__wrapped__(str(tmp_path)) == 0.6
    assert server_default_temperature.__wrapped__(str(tmp_path / "missing")) == 1.0
    g = _group()
    stamp(g, [None], default=0.6)
    assert g["generation_params"]["temperature"] == 0.6


def test_disagreeing_temperatures_are_listed_not_guessed():
    g = _group()
    stamp(g, [0.7, None, 0.7], default=1.0)
    assert "temperature" not in g["generation_params"]
    assert g["generation_params"][TEMPERATURES_SEEN_KEY] == [0.7, 1.0]


def test_greedy_requests_are_not_sampling_temperatures():
    # a rollout task that samples the group at 1.0 and greedily probes the model once (tests/trainer/e2e_env.py)
    g = _group()
    stamp(g, [1.0, 0.0], default=1.0)
    assert g["generation_params"] == {"temperature": 1.0}
    g = _group()
    stamp(g, [0.0], default=1.0)  # only greedy calls: nothing to stamp
    assert "generation_params" not in g


def test_what_the_environment_reported_is_kept():
    for reported in (
        {"generation_params": {"temperature": 0.3}},
        {"group_overrides": {"temperature": 0.3}},
        {"overrides": [{"temperature": 0.3}]},
    ):
        g = _group(**reported)
        assert reported_temperature(g)
        before = json.dumps(g, sort_keys=True)
        stamp(g, [0.9], default=1.0)
        assert json.dumps(g, sort_keys=True) == before
    g = _group()
    stamp(g, [], default=1.0)  # nothing requested in this task (the env generated elsewhere): nothing stamped
    assert "generation_params" not in g
