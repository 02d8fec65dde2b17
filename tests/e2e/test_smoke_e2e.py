# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""`atropos-verl doctor CONFIG --smoke` for real on the CPU backend, with a LoRA config: two steps of the config's
stack, LoRA served merged (the default the plan fills in), each mechanism judged from the run's own metrics."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import yaml

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "atropos-verl")
MECHANISMS = ("run", "servers", "drain", "push", "policy stamp", "steps")


def test_smoke_of_a_lora_config_passes_every_mechanism(tmp_path):
    config = yaml.safe_load((ROOT / "configs" / "cpu_tiny.yaml").read_text())
    config["verl"] += ["actor_rollout_ref.model.lora_rank=8", "actor_rollout_ref.model.lora_alpha=16",
                       "actor_rollout_ref.model.target_modules=all-linear"]
    path = tmp_path / "lora.yaml"
    path.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "smoke"
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    done = subprocess.run([CLI, "doctor", str(path), "--smoke", "--workdir", str(workdir)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    verdicts = {line.split()[1] if line.split()[1] != "policy" else "policy stamp": line.split()[0]
                for line in done.stdout.splitlines() if line.startswith("  ") and line.split()[0] in ("pass", "FAIL")}
    assert verdicts == dict.fromkeys(MECHANISMS, "pass"), out[-3000:]
    assert "smoke: pass" in done.stdout
    smoke = yaml.safe_load((workdir / "smoke.yaml").read_text())
    assert "actor_rollout_ref.model.lora_rank=8" in smoke["verl"] and smoke["backend"] == "auto"
    trainer_log = (workdir / "cpu_tiny-smoke" / "logs" / "trainer.log").read_text()
    assert "lora" in trainer_log.lower()
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before  # nothing of the run left
