# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""An environment whose every group the API's door refuses ends the run quickly, with the reason and the lengths, and
without filling the disk: such an environment posts as fast as it can, since nothing it sends reaches the queue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from atropos_verl.group_rules import Reason
from tests.e2e.test_launcher_e2e import CONFIG, assert_nothing_left, metric_steps, output, start_run

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHECKOUT = ROOT / "tests" / "fixtures" / "conformance"
STEPS = 3  # cpu_tiny's ceiling: 5 steps of 2 groups, so 10 groups rejected in a row end the wait


def test_every_group_refused_at_the_door_ends_the_run_with_the_lengths(tmp_path, monkeypatch):
    monkeypatch.setenv("CONFORMANCE_TRAP_URL", "http://127.0.0.1:9/v1")
    tiny = yaml.safe_load(CONFIG.read_text())
    config = {**tiny, "run_name": "door", "output_dir": str(tmp_path / "runs"), "atropos_checkout": str(CHECKOUT),
              "environments": [{"env": "environments/whole_chat_tokenized.py", "name": "whole_chat_tokenized"}]}
    path = tmp_path / "door.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    run_dir = tmp_path / "runs" / "door"
    proc = start_run(tmp_path, f"trainer.total_training_steps={STEPS}", config=path)
    assert proc.wait(timeout=900) != 0, output(tmp_path)

    trainer_log = (run_dir / "logs" / "trainer.log").read_text(errors="replace")
    assert "NothingToLearnError" in trainer_log and "door rejected the last" in trainer_log, output(tmp_path)
    assert "longest response" in trainer_log and "data.max_response_length=8" in trainer_log
    assert metric_steps(run_dir) == []  # nothing ever reached a batch

    door = json.loads((run_dir / "api_door.json").read_text())
    records = [json.loads(line) for line in (run_dir / "quarantine.jsonl").read_text().splitlines()]
    print(f"door: {door['rejected']} rejected, streak {door['streak']}; quarantine records {len(records)}")
    assert door["accepted"] == 0 and door["streak"] >= 10
    assert door["by_env"] == {"whole_chat_tokenized": door["rejected"]}
    assert {(r["source"], r["reason"]) for r in records} == {("api", Reason.RESPONSE_TOO_LONG)}
    assert len(records) == door["rejected"]  # every refused group is kept
    assert len(records) < 200, "the run went on long after the ceiling"
    assert_nothing_left(run_dir, proc)
