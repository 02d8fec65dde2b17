# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The one line that says why a process failed: the exception, not Hydra's hint after it; an environment's start-up
crash carried into its status record and into the run's end line."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from atropos_verl.env_side.posting import STATUS_FILE_ENV
from atropos_verl.launch.log_lines import last_error_line
from atropos_verl.launch.supervisor import Child, RunFailed, Supervisor

HYDRA_TAIL = """Error executing job with overrides: ['atropos.api_url=http://127.0.0.1:1']
Traceback (most recent call last):
  File "ray_trainer.py", line 10, in fit
TimeoutError: no batch from the Atropos API at http://127.0.0.1:1 within 300s (queue 0)

Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.
"""


def test_the_exception_not_hydras_hint(tmp_path):
    log = tmp_path / "trainer.log"
    log.write_text(HYDRA_TAIL)
    assert last_error_line(log, or_last=True).startswith("TimeoutError: no batch from the Atropos API")
    log.write_text("starting\natropos_verl.errors.ConfigError: invalid trainer config:\n  - a problem\n")
    assert last_error_line(log) == "atropos_verl.errors.ConfigError: invalid trainer config:"
    log.write_text("WARNING something\nERROR:root:Error in collect_trajectories: boom\nlater\n")
    assert last_error_line(log) == "ERROR:root:Error in collect_trajectories: boom"  # no traceback: the marker line


def test_a_child_that_dies_at_start_up_ends_the_run_with_its_error(tmp_path):
    script = "raise FileNotFoundError(2, 'No such file or directory', 'environments/qa/qa_data.csv')"
    child = Child(name="qa", role="env", argv=[sys.executable, "-c", script], log_path=tmp_path / "qa.log",
                  max_restarts=1)
    sup = Supervisor(restart_backoff=0.05, stop_grace=1)
    sup.start(child)
    deadline = time.monotonic() + 30
    with pytest.raises(RunFailed) as failed:
        while time.monotonic() < deadline:
            sup.check()
            time.sleep(0.05)
    message = str(failed.value)
    assert "qa exited with code 1 after 1 restart(s) (limit 1): FileNotFoundError: [Errno 2] No such file" in message
    assert "qa_data.csv" in message and child.last_error.startswith("FileNotFoundError")


def test_the_env_runner_writes_its_start_up_crash_into_its_status_record(tmp_path):
    status = tmp_path / "env.status.json"
    missing = tmp_path / "environments" / "nowhere.py"
    done = subprocess.run([sys.executable, "-m", "atropos_verl.env_side.runner", str(missing), "serve"],
                          env={**__import__("os").environ, STATUS_FILE_ENV: str(status)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    record = json.loads(status.read_text())
    assert record["last_error"].startswith("FileNotFoundError: environment file not found")
