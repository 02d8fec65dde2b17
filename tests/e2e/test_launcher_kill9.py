# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""`kill -9` of a live launcher leaves nothing behind within 15 s (its watchdog stops every recorded session and
removes the run's temp dir); while it is live, a second launcher on the same run dir refuses and changes nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from atropos_verl.launch.processes import session_members, stop_process_group
from tests.e2e.test_launcher_e2e import CLI, CONFIG, metric_steps, output, recorded_sessions, start_run, wait_for

pytestmark = pytest.mark.e2e


def _watchdog(launcher: subprocess.Popen) -> psutil.Process:
    kids = [p for p in psutil.Process(launcher.pid).children() if "atropos_verl.launch.watchdog" in p.cmdline()]
    assert len(kids) == 1, kids
    return kids[0]


def _running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _alive(run_dir: Path) -> list[int]:
    return [p.pid for sessions in recorded_sessions(run_dir).values() for sid in sessions for p in session_members(sid)]


def test_kill9_leaves_nothing_and_a_second_launcher_refuses(tmp_path):
    run_dir = tmp_path / "runs" / "cpu_tiny"
    proc = start_run(tmp_path, "trainer.total_training_steps=200")
    try:
        wait_for(lambda: 1 in metric_steps(run_dir), 600, proc, "the first training step", tmp_path)
        watchdog = _watchdog(proc)
        temp_dir = Path(watchdog.cmdline()[6])  # python -m MODULE PID CREATE_TIME RUN_DIR TEMP_DIR [EMPTY_DIR..]
        assert temp_dir.is_dir() and temp_dir.name.startswith("av-")
        assert any(temp_dir.glob("rv-*")), "the trainer's Ray cluster did not use the run's temp dir"

        files = {n: ((run_dir / n).read_bytes(), (run_dir / n).stat().st_mtime_ns)
                 for n in ("launch.json", "processes.json", "endpoints.json")}
        t0 = time.monotonic()
        second = subprocess.run([CLI, "run", str(CONFIG), "--plain"], cwd=tmp_path, capture_output=True, text=True,
                                timeout=60)
        refuse_s = time.monotonic() - t0
        assert second.returncode != 0
        assert f"already in use by launcher pid {proc.pid}" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr
        assert files == {n: ((run_dir / n).read_bytes(), (run_dir / n).stat().st_mtime_ns) for n in files}

        assert _alive(run_dir)
        start = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
        deadline = start + 15
        while time.monotonic() < deadline and (_alive(run_dir) or _running(watchdog) or temp_dir.exists()):
            time.sleep(0.2)
        elapsed = time.monotonic() - start
    finally:
        if proc.poll() is None:
            stop_process_group(proc, grace=15)
    print(f"second launcher refused in {refuse_s:.1f}s; nothing left {elapsed:.1f}s after kill -9")
    assert _alive(run_dir) == [], f"left alive {elapsed:.1f}s after kill -9:\n{output(tmp_path)}"
    assert not _running(watchdog)
    assert not temp_dir.exists()
    assert elapsed <= 15
    leftovers = json.loads((run_dir / "leftovers.json").read_text())
    assert leftovers["found_alive"] and leftovers["survived"] == []
    assert not (run_dir / "endpoints.json").exists()
