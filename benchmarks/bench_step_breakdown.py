# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Where a training step and the start-up go: the integration's own parts against verl's and the wait for a batch.

    python benchmarks/bench_step_breakdown.py --workdir DIR [--keep-model] [--steps N] [-- extra verl overrides]
    python benchmarks/bench_step_breakdown.py --run-dir runs/cpu_demo      # a finished run, nothing started

The first form runs the CPU demo for N steps (default 100; --keep-model reuses the warm-started model of an earlier
run in DIR) and then reads it like the second. Per part it prints the median seconds per step (first step left out:
it carries one-time warm-ups) and its share of the summed step time; the integration's share target is < 5 %. The
start-up table is `<run dir>/startup.jsonl`: when each phase ended, from the command's start, and how long it took.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atropos_verl.startup_times import phases  # noqa: E402
from atropos_verl.trainer.metrics import OURS_KEYS, VERL_KEYS, WAIT_KEYS  # noqa: E402

PARTS = [("wait", k) for k in WAIT_KEYS] + [("verl", k) for k in VERL_KEYS] + [("ours", k) for k in OURS_KEYS]


def step_table(metrics_path: Path) -> list[str]:
    rows = [json.loads(line)["data"] for line in metrics_path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "timing_s/step" in r][1:]
    if not rows:
        return [f"{metrics_path}: no step after the first"]
    total = sum(r["timing_s/step"] for r in rows)
    median_step = statistics.median(r["timing_s/step"] for r in rows)
    out = [f"{len(rows)} steps (first left out), step median {median_step:.3f} s",
           f"{'group':6s} {'part':24s} {'median s':>9s} {'share':>7s}"]
    for group, key in PARTS + [("ours", "integration_unnamed")]:
        values = [float(r.get(f"timing_s/{key}", 0.0)) for r in rows]
        if any(values):
            out.append(f"{group:6s} {key:24s} {statistics.median(values):9.3f} {sum(values) / total:7.1%}")
    for group, key in (("wait", "atropos_wait"), ("verl", "verl"), ("ours", "integration")):
        values = [float(r.get(f"timing_s/{key}", 0.0)) for r in rows]
        out.append(f"{group:6s} {'= ' + key:24s} {statistics.median(values):9.3f} {sum(values) / total:7.1%}")
    shares = [float(r["atropos/integration_share"]) for r in rows if "atropos/integration_share" in r]
    if shares:
        out.append(f"integration share of a step: median {statistics.median(shares):.1%} (target < 5 %)")
    return out


def startup_table(run_dir: Path) -> list[str]:
    recorded = phases(run_dir)
    if not recorded:
        return [f"{run_dir}: no startup.jsonl"]
    out = [f"{'phase':32s} {'ended at s':>10s} {'took s':>8s}"]
    previous = 0.0
    for name, at in recorded:
        out.append(f"{name:32s} {at:10.1f} {at - previous:8.1f}")
        previous = at
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run-dir", type=Path, default=None)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep-model", action="store_true")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    run_dir = args.run_dir
    if run_dir is None:
        if args.workdir is None:
            ap.error("give --run-dir or --workdir")
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_cpu_demo import CONFIG, run_demo

        steps = [f"trainer.total_training_steps={args.steps}", f"trainer.save_freq={args.steps}"]
        if run_demo(args.workdir, CONFIG, [*steps, *args.overrides], args.keep_model) is None:
            return 1
        run_dir = args.workdir / "runs" / "cpu_demo"
    print("\n".join(["== step", *step_table(run_dir / "metrics.jsonl"), "== start-up", *startup_table(run_dir)]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
