# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""A run that learns nothing ends with an error; rejections are summarised by reason and environment name."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from atropos_verl.trainer.env_names import EnvNames
from atropos_verl.trainer.metrics import rejected_by_env, rejection_metrics
from atropos_verl.trainer.reject_ceiling import NothingToLearnError, RejectionCeiling


def _names(env_id):
    return {0: "gsm8k", 1: "tools"}.get(env_id, f"env{env_id}")


def _record(ceiling, groups, rejected):
    """As the trainer does: rejected groups counted by reason and by environment name, then recorded."""
    ceiling.record(len(groups), Counter(reason for _, reason in rejected), rejected_by_env(groups, rejected, _names))


def test_consecutive_fully_rejected_steps_end_the_run():
    ceiling = RejectionCeiling(steps=3, fraction=1.0)
    groups = [{"env_id": 0}, {"env_id": 1}]
    for step in (1, 2):
        _record(ceiling, groups, [(0, "a"), (1, "b")])
        ceiling.check()
    _record(ceiling, groups, [(0, "a")])  # one group trained: the streak restarts
    ceiling.check()
    for step in (4, 5):
        _record(ceiling, groups, [(0, "a"), (1, "a")])
        ceiling.check()
    _record(ceiling, groups, [(0, "a"), (1, "b")])
    with pytest.raises(NothingToLearnError, match=r"3 consecutive steps.*a x5, b x1"):
        ceiling.check()
    summary = ceiling.summary()
    assert "11 of 12 groups rejected" in summary and "a 8, b 3" in summary and "gsm8k 6, tools 5" in summary


def test_fraction_below_one():
    ceiling = RejectionCeiling(steps=1, fraction=0.5)
    _record(ceiling, [{}, {}, {}, {}], [(0, "x")])
    ceiling.check()
    _record(ceiling, [{}, {}, {}, {}], [(0, "x"), (1, "x")])
    with pytest.raises(NothingToLearnError):
        ceiling.check()
    with pytest.raises(ValueError):
        RejectionCeiling(steps=0, fraction=1.0)


def test_env_names_from_status_files(tmp_path):
    # the launcher's process name (the file's), not the class's `name` (None here)
    (tmp_path / "gsm8k.status.json").write_text(json.dumps({"env_id": 0, "name": None, "time": 1.0}))
    (tmp_path / "old.status.json").write_text(json.dumps({"env_id": 0, "name": "gsm8k_server", "time": 0.5}))
    (tmp_path / "starting.status.json").write_text(json.dumps({"env_id": None, "name": None}))
    (tmp_path / "torn.status.json").write_text("{")
    names = EnvNames(tmp_path)
    names.refresh()
    assert names.name_of(0) == "gsm8k" and names.name_of(3) == "env3" and names.name_of(None) == "unknown"
    by_env = rejected_by_env([{"env_id": 0}, {"env_id": 3}, {"env_id": 0}], [(0, "r"), (2, "r")], names.name_of)
    metrics = rejection_metrics(by_env)
    assert metrics == {"atropos/env/gsm8k/groups_rejected": 2.0}
