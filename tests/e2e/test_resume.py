# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Kill the trainer (SIGKILL) once it has checkpointed (save_freq=1), rerun it against a fresh API: it restores the
last checkpoint k, registers at starting_step=k, trains two more steps, and the API ends at the trainer's step."""

from __future__ import annotations

import json

import pytest

from atropos_verl.launch.api_server import AtroposAPIProcess
from tests.trainer.e2e_run import run_trainer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]


def test_killed_run_resumes_at_its_checkpoint(tmp_path):
    from tests.e2e.cpu_harness import build_model

    model_dir = build_model(tmp_path / "model")
    work = tmp_path / "work"
    with AtroposAPIProcess(log_path=tmp_path / "api1.log") as api:
        first = run_trainer(model_dir, work, steps=1000, api=api, kill_after_checkpoint=1)
    k = int((work / "ckpt" / "latest_checkpointed_iteration.txt").read_text())
    assert 1 <= k < 1000, "the first run should have been stopped right after its first checkpoints"
    assert 1 in {int(r["step"]) for r in first.metrics}

    with AtroposAPIProcess(log_path=tmp_path / "api2.log") as api:
        second = run_trainer(model_dir, work, steps=k + 2, api=api)
    assert second.returncode == 0, second.log()
    # verl's own _load_checkpoint announces the restored step (the first run had no checkpoint to restore).
    assert f"Setting global step to {k}" in (work / "trainer.log").read_text(errors="replace"), second.log()
    resumed_file = work / "run" / f"metrics.resumed-{k}.jsonl"
    resumed = {int(r["step"]): r["data"] for r in map(json.loads, resumed_file.read_text().splitlines())}
    assert sorted(resumed) == [k + 1, k + 2]
    # The rerun registered the fresh API at starting_step=k. The API then counts every batch it cuts, and it may cut
    # one more than the trainer consumes when the environment queued ahead, so its step is never below the trainer's.
    assert f"at step {k} (batch_size=" in (work / "trainer.log").read_text(errors="replace"), second.log()
    assert resumed[k + 1]["atropos/api_step"] >= k + 1
    assert resumed[k + 2]["atropos/api_step"] >= k + 2
    assert k + 2 <= second.api_status["current_step"] <= k + 3
