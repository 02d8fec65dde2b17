# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Runs the CPU demo (`atropos-verl run configs/cpu_demo.yaml`) in a fresh directory and prints its numbers:
held-out accuracy before/after, time to the first training step, total time. Targets on a 2-core machine: +25
points, first step within 2 minutes, whole demo under 10 minutes.

    python benchmarks/bench_cpu_demo.py [--workdir DIR] [--keep-model] [-- extra verl overrides]
    python benchmarks/bench_cpu_demo.py --order-seeds 1 2 3 -- trainer.total_training_steps=150 trainer.save_freq=150

With --keep-model the warm-started model of an earlier run in the same workdir is reused (the cached second run).
With --order-seeds the demo runs once per training-order seed of the addition environment (one after the other, each
in its own directory) and the spread of the gains is printed: the seed noise the CI learning test must stay above.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "cpu_demo.yaml"


def config_with_order_seed(work: Path, seed: int) -> Path:
    """configs/cpu_demo.yaml with the addition env's `order_seed` set; written into `work`."""
    config = yaml.safe_load(CONFIG.read_text())
    for env in config["environments"]:
        env.setdefault("settings", {})["order_seed"] = seed
    path = work / f"cpu_demo_order_seed_{seed}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_demo(work: Path, config: Path, overrides: list[str], keep_model: bool) -> dict | None:
    run_dir = work / "runs" / "cpu_demo"
    work.mkdir(parents=True, exist_ok=True)
    if run_dir.exists():
        keep = run_dir / "model" if keep_model else None
        for child in run_dir.iterdir():
            if child != keep:
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    cli = str(Path(sys.executable).parent / "atropos-verl")
    proc = subprocess.run([cli, "run", str(config), "--plain", "--", *overrides], cwd=work)
    result_path = run_dir / "demo_result.json"
    if proc.returncode != 0 or not result_path.is_file():
        print(f"demo failed (exit code {proc.returncode}); see {run_dir / 'logs'}")
        return None
    result = json.loads(result_path.read_text())
    t = result.get("timings", {})
    print(f"held-out accuracy ({result.get('heldout_items')} items): {result['before']:.3f} -> {result['after']:.3f}"
          f"  (gain {100 * result['gain']:+.1f} points)")
    print(f"model ready:        {t.get('model_ready_s', float('nan')):7.1f} s")
    print(f"first training step: {t.get('first_step_s', float('nan')):7.1f} s after the command")
    print(f"total:              {t.get('total_s', float('nan')):7.1f} s")
    print(f"trainer steps:      {result.get('trainer_steps')}")
    print(f"plot:               {run_dir / 'heldout_accuracy.png'}")
    return result


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep-model", action="store_true")
    ap.add_argument("--order-seeds", type=int, nargs="+", default=None)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="cpu-demo-"))
    if not args.order_seeds:
        return 0 if run_demo(work, CONFIG, args.overrides, args.keep_model) else 1

    gains: dict[int, float] = {}
    for seed in args.order_seeds:
        seed_work = work / f"order_seed_{seed}"
        seed_work.mkdir(parents=True, exist_ok=True)
        print(f"== order_seed {seed} ({seed_work})", flush=True)
        result = run_demo(seed_work, config_with_order_seed(seed_work, seed), args.overrides, args.keep_model)
        if result is None:
            return 1
        gains[seed] = 100 * result["gain"]
    print("seed noise: " + ", ".join(f"order_seed {s}: {g:+.1f}" for s, g in gains.items()) + " points")
    if len(gains) > 1:
        values = list(gains.values())
        print(f"gain mean {statistics.mean(values):+.1f}, stdev {statistics.stdev(values):.1f}, "
              f"min {min(values):+.1f}, max {max(values):+.1f} points")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
