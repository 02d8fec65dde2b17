# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The launcher plans a run (hooks checked, verl's config composed) without importing torch or verl: those imports
take seconds on 2 cores, and everything the launcher does before starting the trainer is on the start-up's critical
path. Checked in a fresh interpreter on the CPU demo's own config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
from pathlib import Path
from atropos_verl.launch.config import load_run_config
from atropos_verl.launch.plan import make_plan

config = load_run_config(sys.argv[1]).model_copy(update={"output_dir": Path(sys.argv[2])})
plan = make_plan(config, ["trainer.total_training_steps=7"], has_accelerator=False, model_path=sys.argv[2])
heavy = sorted(m for m in ("torch", "verl", "transformers", "vllm", "atroposlib") if m in sys.modules)
print(json.dumps({"heavy": heavy, "steps": plan.verl.trainer.total_training_steps,
                  "rollout_n": plan.verl.actor_rollout_ref.rollout.n}))
"""


def test_planning_the_demo_imports_neither_torch_nor_verl(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", PROBE, str(ROOT / "configs" / "cpu_demo.yaml"), str(tmp_path)],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    # verl's YAML was composed all the same, with the run config's and the command line's overrides
    assert result["steps"] == 7 and result["rollout_n"] == 8
