# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""A run that learns nothing ends with an error; rejections are summarised by reason and environment name."""

from __future__ import annotations

import json
import os
import time
from collections import Counter

import pytest

from atropos_verl.api_side.door_stats import DoorStats
from atropos_verl.trainer.door_rejections import DoorRejections
from atropos_verl.trainer.env_drops import EnvDrops
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


def test_groups_rejected_at_the_door_in_a_row_end_the_wait_at_the_limit():
    ceiling = RejectionCeiling(steps=2, fraction=1.0, groups_per_step=3)
    ceiling.check_door(None)  # an API without the door file
    ceiling.check_door({"streak": 5})
    door = {"streak": 6, "streak_by_reason": {"response_too_long": 5, "prompt_too_long": 1},
            "last": {"reason": "response_too_long", "env": "word_game",
                     "detail": "longest response 19 tokens > data.max_response_length=16"}}
    with pytest.raises(NothingToLearnError) as failed:
        ceiling.check_door(door)
    message = str(failed.value)
    assert "rejected the last 6 groups" in message and "atropos.reject_ceiling.steps=2" in message
    assert "response_too_long x5, prompt_too_long x1" in message
    assert "from word_game: response_too_long (longest response 19 tokens > data.max_response_length=16)" in message


def test_each_step_takes_the_door_rejections_since_the_last_even_across_an_api_restart(tmp_path):
    path = tmp_path / "api_door.json"
    reader = DoorRejections(path)
    assert reader.take() == (Counter(), Counter())  # no door file yet
    door = DoorStats(path, min_interval=0)
    door.refused([("response_too_long", "a", ""), ("response_too_long", "b", ""), ("prompt_too_long", "a", "")])
    assert reader.take() == (Counter(response_too_long=2, prompt_too_long=1), Counter(a=2, b=1))
    door.let_through(2)
    assert reader.take() == (Counter(), Counter())
    restarted = DoorStats(path, min_interval=0)  # the supervisor restarted the API: its counts begin again
    restarted.refused([("response_too_long", "a", "")])
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))  # a new mtime even on a coarse clock
    assert reader.take() == (Counter(response_too_long=1), Counter(a=1))
    ceiling = RejectionCeiling(steps=1, fraction=1.0)
    ceiling.record(2 + 1, Counter(response_too_long=1), Counter(a=1))
    assert "1 of 3 groups rejected" in ceiling.summary()


def test_groups_the_environments_dropped_as_too_long_end_the_wait_only_when_none_was_posted(tmp_path):
    def status(name, skipped, posted):
        (tmp_path / f"{name}.status.json").write_text(
            json.dumps({"env_id": 0, "skipped_too_long": skipped, "groups_posted": posted}))

    drops = EnvDrops(tmp_path, min_interval=0)
    ceiling = RejectionCeiling(steps=2, fraction=1.0, groups_per_step=3)
    status("long", 4, 0)
    status("fine", 0, 7)
    drops.mark()  # a batch came: what came before it no longer counts
    assert drops.since_mark() == (Counter(), 0)
    status("long", 10, 0)
    dropped, posted = drops.since_mark()
    assert (dropped, posted) == (Counter(long=6), 0)
    with pytest.raises(NothingToLearnError, match=r"dropped 6 groups.*long x6.*max_token_len 57 \(data.max_prompt"):
        ceiling.check_env_drops(dropped, posted, max_prompt=48, max_response=8)
    status("fine", 0, 8)  # one group posted meanwhile: a batch may still form
    ceiling.check_env_drops(*drops.since_mark(), max_prompt=48, max_response=8)
    ceiling.check_env_drops(Counter(long=5), 0, max_prompt=48, max_response=8)  # below the limit


def test_a_wait_that_times_out_says_what_each_environment_did_with_its_items(tmp_path):
    import json

    from atropos_verl.trainer.env_drops import waiting_summary

    (tmp_path / "alike.status.json").write_text(json.dumps(
        {"groups_posted": 0, "items_started": 9, "items_without_group": 9, "without_group/equal_scores": 9}))
    (tmp_path / "fine.status.json").write_text(json.dumps({"groups_posted": 3, "items_started": 3}))
    assert waiting_summary(tmp_path) == ("alike: 0 groups posted, 9 of 9 items gave no group (equal_scores x9); "
                                         "fine: 3 groups posted, 3 items started")
    assert waiting_summary(tmp_path / "none") == "no environment status records"
