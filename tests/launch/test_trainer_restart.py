# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""When a dead trainer is resumed from its checkpoint, and why not (the reason line says which rule applied)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atropos_verl.launch.config import SupervisionSettings
from atropos_verl.launch.trainer_restart import checkpoint_step, decide_resume, record_resume


def _checkpoint(run_dir: Path, step: int) -> None:
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / "checkpoints" / "latest_checkpointed_iteration.txt").write_text(f"{step}\n")


def _decide(run_dir: Path, **kw):
    args = {"exit_code": -9, "stopping": False, "run_dir": run_dir, "resumes_done": 0, "limit": 2, "save_freq": 1}
    return decide_resume(**(args | kw))


def test_a_dead_trainer_with_a_checkpoint_is_resumed_at_its_step(tmp_path):
    _checkpoint(tmp_path, 3)
    d = _decide(tmp_path)
    assert d.resume and d.step == 3 and d.why == ""
    assert _decide(tmp_path, exit_code=1, resumes_done=1).resume


def test_no_checkpoint_ends_the_run_and_says_why(tmp_path):
    d = _decide(tmp_path, save_freq=-1)
    assert not d.resume and d.why == "no resume: no checkpoint to resume from (trainer.save_freq=-1)"
    assert _decide(tmp_path, save_freq=5).why == "no resume: no checkpoint to resume from"
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "latest_checkpointed_iteration.txt").write_text("garbage")
    assert checkpoint_step(tmp_path) is None and not _decide(tmp_path).resume


def test_restarts_exhausted_or_disabled(tmp_path):
    _checkpoint(tmp_path, 4)
    d = _decide(tmp_path, resumes_done=2)
    assert not d.resume and d.why == "no resume: out of trainer restarts (2 of 2 used)"
    assert _decide(tmp_path, limit=0).why == "no resume: supervision.trainer_restarts=0"


def test_a_finished_trainer_or_a_stopping_launcher_is_never_resumed(tmp_path):
    _checkpoint(tmp_path, 4)
    assert not _decide(tmp_path, exit_code=0).resume
    d = _decide(tmp_path, stopping=True)
    assert not d.resume and "stopping" in d.why


def test_resumes_are_appended_to_the_run_dir_record(tmp_path):
    record_resume(tmp_path, {"from_step": 2, "exit_code": -9})
    record_resume(tmp_path, {"from_step": 5, "exit_code": 1})
    assert [e["from_step"] for e in json.loads((tmp_path / "resumes.json").read_text())] == [2, 5]


def test_trainer_restarts_setting_is_bounded():
    assert SupervisionSettings().trainer_restarts == 2
    with pytest.raises(ValueError):
        SupervisionSettings(trainer_restarts=-1)
    with pytest.raises(ValueError):
        SupervisionSettings(trainer_restarts=100)
