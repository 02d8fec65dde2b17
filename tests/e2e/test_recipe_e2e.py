# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The verl recipe (recipe/atropos/) runs the cpu_tiny configuration end to end through its own entry point."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "recipe" / "atropos" / "run_cpu_tiny.sh"


def test_recipe_runs_cpu_tiny_through_its_entry_point(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    started = time.monotonic()
    proc = subprocess.run(["bash", str(SCRIPT), "trainer.total_training_steps=2"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=1200)
    elapsed = time.monotonic() - started
    out = proc.stdout + proc.stderr
    print(f"recipe run_cpu_tiny.sh: {elapsed:.0f} s")
    assert proc.returncode == 0, out[-5000:]
    assert "trainer finished" in out and "no process left running" in out
    run_dir = tmp_path / "runs" / "cpu_tiny"
    argv = json.loads((run_dir / "launch.json").read_text())["trainer_argv"]
    assert argv[1:3] == ["-m", "recipe.atropos.main_atropos"]
    steps = [int(json.loads(line)["step"]) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]
    pin = (ROOT / "recipe" / "atropos" / "REQUIRED_VERL.txt").read_text().strip()
    assert pin == f"verl=={importlib.metadata.version('verl')}"  # the pin is the version it just ran with
