# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Environments whose groups can never reach a batch end the run quickly, naming the lengths, instead of leaving the
trainer waiting for `atropos.poll_timeout`: every group refused at the API's door (such an environment also posts as
fast as it can, since nothing it sends reaches the queue), or every group dropped by atroposlib before posting."""

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
STEPS = 3  # cpu_tiny's ceiling: 5 steps of 2 groups, so 10 groups refused (or dropped) in a row end the wait


def _run(tmp_path: Path, monkeypatch, env: str) -> tuple[Path, str]:
    """`atropos-verl run` of cpu_tiny with one fixture environment; returns its run dir and trainer log."""
    monkeypatch.setenv("CONFORMANCE_TRAP_URL", "http://127.0.0.1:9/v1")
    tiny = yaml.safe_load(CONFIG.read_text())
    config = {**tiny, "run_name": "door", "output_dir": str(tmp_path / "runs"), "atropos_checkout": str(CHECKOUT),
              "environments": [{"env": f"environments/{env}.py", "name": env}]}
    path = tmp_path / "door.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    run_dir = tmp_path / "runs" / "door"
    proc = start_run(tmp_path, f"trainer.total_training_steps={STEPS}", config=path)
    assert proc.wait(timeout=900) != 0, output(tmp_path)
    assert metric_steps(run_dir) == []  # nothing ever reached a batch
    assert_nothing_left(run_dir, proc)
    return run_dir, (run_dir / "logs" / "trainer.log").read_text(errors="replace")


def test_every_group_refused_at_the_door_ends_the_run_with_the_lengths(tmp_path, monkeypatch):
    run_dir, trainer_log = _run(tmp_path, monkeypatch, "answer_with_trace")
    assert "NothingToLearnError" in trainer_log and "door rejected the last" in trainer_log, trainer_log[-3000:]
    assert "longest response" in trainer_log and "data.max_response_length=8" in trainer_log

    door = json.loads((run_dir / "api_door.json").read_text())
    records = [json.loads(line) for line in (run_dir / "quarantine.jsonl").read_text().splitlines()]
    print(f"door: {door['rejected']} rejected, streak {door['streak']}; quarantine records {len(records)}")
    assert door["accepted"] == 0 and door["streak"] >= 10
    assert door["by_env"] == {"answer_with_trace": door["rejected"]}
    assert {(r["source"], r["reason"]) for r in records} == {("api", Reason.RESPONSE_TOO_LONG)}
    assert len(records) == door["rejected"]  # every refused group is kept
    assert len(records) < 200, "the run went on long after the ceiling"


def test_every_group_dropped_by_atroposlib_ends_the_run_with_the_caps(tmp_path, monkeypatch):
    run_dir, trainer_log = _run(tmp_path, monkeypatch, "long_system_prompt")
    assert "NothingToLearnError" in trainer_log and "dropped" in trainer_log, trainer_log[-3000:]
    assert "max_token_len 57 (data.max_prompt_length=48 + data.max_response_length=8 + 1)" in trainer_log
    status = json.loads((run_dir / "envs" / "long_system_prompt.status.json").read_text())
    print(f"environment: {status['skipped_too_long']} groups dropped, {status['groups_posted']} posted")
    assert status["groups_posted"] == 0 and status["skipped_too_long"] >= 10
    assert not (run_dir / "quarantine.jsonl").exists()  # nothing reached the API
