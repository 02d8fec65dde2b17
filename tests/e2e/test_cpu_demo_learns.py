# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The CPU demo, shortened: the real `configs/cpu_demo.yaml` through the whole stack, fewer GRPO steps, and the
held-out accuracy must rise by more than run-to-run noise (measured: see docs/cpu_demo.md).

Half-way, the trainer is killed (SIGKILL) after a checkpoint: the launcher resumes it from that checkpoint (fresh API
and environments, same command) and the demo still ends with its held-out gain. This is also the hybrid-mode check of
the launcher's resume (the asynchronous one is tests/e2e/test_trainer_resume_e2e.py): the resumed trainer starts from
the checkpoint's step, weights and API position, and nothing of either trainer is left running."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_launcher_e2e import assert_nothing_left, recorded_sessions

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
STEPS = 150
# Held-out gain after 150 steps over three training-order seeds: +16.6, +14.0, +14.6 points (mean +15.1, stdev 1.4;
# `benchmarks/bench_cpu_demo.py --order-seeds 1 2 3`). A 1,000-item greedy evaluation carries ~1.5 points of binomial
# noise. Eight points is more than 4 stdev below the mean gain and 5 evaluation-noise widths above zero.
MIN_GAIN = 0.08
SAVE_FREQ = 50


def _last_step(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    steps = [0]
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            steps.append(int(json.loads(line)["step"]))
        except (ValueError, KeyError):
            pass
    return max(steps)


def _kill_trainer_after_checkpoint(run_dir: Path, proc: subprocess.Popen, step: int, timeout: float = 1200) -> int:
    """SIGKILL the trainer's process a few steps after checkpoint `step` exists; returns the step it had logged."""
    latest = run_dir / "checkpoints" / "latest_checkpointed_iteration.txt"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if latest.is_file() and latest.read_text().strip() == str(step) and (logged := _last_step(run_dir)) > step:
            trainer = next(c for c in json.loads((run_dir / "processes.json").read_text()) if c["name"] == "trainer")
            os.kill(trainer["sessions"][-1], signal.SIGKILL)
            return logged
        time.sleep(0.5)
    raise AssertionError(f"no checkpoint {step} with a later step logged (launcher exit {proc.poll()})")


def test_demo_improves_heldout_accuracy_through_a_trainer_resume(tmp_path):
    cli = str(Path(sys.executable).parent / "atropos-verl")
    argv = [cli, "run", str(ROOT / "configs" / "cpu_demo.yaml"), "--plain", "--",
            f"trainer.total_training_steps={STEPS}", f"trainer.save_freq={SAVE_FREQ}"]
    run_dir = tmp_path / "runs" / "cpu_demo"
    with open(tmp_path / "out.txt", "w") as out_fh, open(tmp_path / "err.txt", "w") as err_fh:
        proc = subprocess.Popen(argv, cwd=tmp_path, stdout=out_fh, stderr=err_fh, text=True, start_new_session=True)
        try:
            killed_at = _kill_trainer_after_checkpoint(run_dir, proc, SAVE_FREQ)
            proc.wait(timeout=1500)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=60)
    stdout = (tmp_path / "out.txt").read_text()
    out = stdout + (tmp_path / "err.txt").read_text()
    assert proc.returncode == 0, out[-5000:]
    resumes = json.loads((run_dir / "resumes.json").read_text())
    assert [(r["from_step"], r["exit_code"]) for r in resumes] == [(SAVE_FREQ, -signal.SIGKILL)], resumes
    assert "resumed 1x from checkpoints" in out
    resumed = [json.loads(line) for line in (run_dir / f"metrics.resumed-{SAVE_FREQ}.jsonl").read_text().splitlines()]
    assert [int(r["step"]) for r in resumed] == list(range(SAVE_FREQ + 1, STEPS + 1)), killed_at
    last = [line for line in stdout.splitlines() if line.strip()][-1]
    match = re.fullmatch(r"held-out accuracy: (\d\.\d\d) -> (\d\.\d\d)", last)
    assert match, f"last line was {last!r}"
    result = json.loads((run_dir / "demo_result.json").read_text())
    assert result["heldout_items"] == 1000 and result["trainer_steps"] == STEPS
    assert 0.0 < result["before"] < 0.3, "the warm start must leave a weak but non-zero model"
    assert result["gain"] >= MIN_GAIN, result
    assert (run_dir / "heldout_accuracy.png").stat().st_size > 10_000
    assert (run_dir / "eval_metrics.jsonl").is_file()
    # The demo runs verl's bypass mode: every batch took its old log-probs from the envs' inference_logprobs.
    first = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [int(r["step"]) for r in first] == list(range(1, len(first) + 1)) and len(first) >= killed_at
    steps = [r["data"] for r in first + resumed]
    assert all(m["atropos/old_log_probs_recomputed"] == 0 and m["timing_s/old_log_prob"] < 0.05 for m in steps)

    # The resume itself: verl restored step k's checkpoint, the fresh API was registered at k, the servers stamp the
    # resumed trainer's steps (its weights are step k's, pushed on), and both trainers' processes are gone.
    k = SAVE_FREQ
    assert f"resumed the trainer from step {k}" in out
    log = (run_dir / "logs" / "trainer.log").read_text(errors="replace")
    assert f"Setting global step to {k}" in log and f"at step {k} (batch_size=" in log
    for r in resumed:
        m = r["data"]
        assert m["atropos/served_policy_version"] == r["step"], m
        assert m["atropos/api_step"] >= r["step"], m
        if "atropos/lag/min" in m:
            assert m["atropos/lag/min"] >= 0, m
    sessions = recorded_sessions(run_dir)
    assert len(sessions["trainer"]) == 2 and len(sessions["api"]) == 2 and len(sessions["addition"]) == 2, sessions
    assert not (run_dir / "endpoints.json").exists()
    assert_nothing_left(run_dir, proc)
