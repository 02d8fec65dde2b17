# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Runs the CPU demo (`atropos-verl run configs/cpu_demo.yaml`) in a fresh directory and prints its numbers:
held-out accuracy before/after, time to the first training step, total time. Targets on a 2-core machine: +25
points, first step within 2 minutes, whole demo under 10 minutes.

    python benchmarks/bench_cpu_demo.py [--workdir DIR] [--keep-model] [-- extra verl overrides]

With --keep-model the warm-started model of an earlier run in the same workdir is reused (the cached second run).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep-model", action="store_true")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="cpu-demo-"))
    run_dir = work / "runs" / "cpu_demo"
    if run_dir.exists():
        keep = run_dir / "model" if args.keep_model else None
        for child in run_dir.iterdir():
            if child != keep:
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    cli = str(Path(sys.executable).parent / "atropos-verl")
    cmd = [cli, "run", str(ROOT / "configs" / "cpu_demo.yaml"), "--plain", "--", *args.overrides]
    proc = subprocess.run(cmd, cwd=work)
    result_path = run_dir / "demo_result.json"
    if proc.returncode != 0 or not result_path.is_file():
        print(f"demo failed (exit code {proc.returncode}); see {run_dir / 'logs'}")
        return 1
    result = json.loads(result_path.read_text())
    t = result.get("timings", {})
    print(f"held-out accuracy ({result.get('heldout_items')} items): {result['before']:.3f} -> {result['after']:.3f}"
          f"  (gain {100 * result['gain']:+.1f} points)")
    print(f"model ready:        {t.get('model_ready_s', float('nan')):7.1f} s")
    print(f"first training step: {t.get('first_step_s', float('nan')):7.1f} s after the command")
    print(f"total:              {t.get('total_s', float('nan')):7.1f} s")
    print(f"trainer steps:      {result.get('trainer_steps')}")
    print(f"plot:               {run_dir / 'heldout_accuracy.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
