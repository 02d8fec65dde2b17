# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Hybrid vs asynchronous mode on the CPU demo task: one run each, same seeds, same warm-started model; prints a table
and writes one PNG with both held-out-accuracy curves against wall-clock time.

    python benchmarks/bench_async_vs_hybrid.py [--workdir DIR] [--modes hybrid async async-standalone]
        [--max-batches-offpolicy N]
        [-- extra verl overrides]

Per mode, from the trainer's metrics.jsonl and the addition env's eval log:
- trainer idle fraction: seconds waiting for generation (the batch, and the drain's wait for running requests) / seconds
  per step (summed over the run);
- completions and tokens the servers answered while the actor was updating (per step);
- weight push (update_weights) and drain seconds (median);
- lag of received sequences in updates (min / mean / max over steps) and groups rejected as stale;
- held-out accuracy before -> after (1,000 pairs) and the env's eval accuracy (200 pairs) over time.
On a GPU machine run the same command with a GPU config's overrides; nothing here is CPU-specific.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cpu_demo import CONFIG, run_demo  # noqa: E402

from atropos_verl.demo.report import eval_points, trainer_steps  # noqa: E402

#: What each compared run sets: the mode, and for async runs where verl's servers run (docs/async.md "Placement").
RUNS = {
    "hybrid": ["atropos.mode=hybrid"],
    "async": ["atropos.mode=async"],
    "async-standalone": ["atropos.mode=async", "atropos.placement=standalone"],
}
KEEP = ("metrics.jsonl", "eval_metrics.jsonl", "demo_result.json", "quarantine.jsonl")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def summarize(run_dir: Path) -> dict[str, float]:
    steps = trainer_steps(run_dir)
    rows = [steps[s] for s in sorted(steps)]
    trained = [m for m in rows if not m.get("atropos/skipped_step")]
    wait = sum(m.get("timing_s/atropos_wait", 0.0) for m in rows)
    step = sum(m.get("timing_s/step", 0.0) for m in rows)
    walls = [m["atropos/wall_time"] for m in rows if "atropos/wall_time" in m]
    result = json.loads((run_dir / "demo_result.json").read_text())
    return {
        "steps": len(rows),
        "skipped_steps": len(rows) - len(trained),
        "train_wall_s": (walls[-1] - walls[0]) if len(walls) > 1 else float("nan"),
        "step_s_median": _median([m.get("timing_s/step", 0.0) for m in rows]),
        "idle_fraction": wait / step if step else float("nan"),
        "completions_during_update": _median([m.get("atropos/overlap/completions_during_update", 0.0)
                                              for m in trained]),
        "tokens_during_update": _median([m.get("atropos/overlap/tokens_during_update", 0.0) for m in trained]),
        "push_s_median": _median([m["timing_s/update_weights"] for m in trained if "timing_s/update_weights" in m]),
        # the whole drain: its wait for running requests (`drain_wait`) and the pause itself
        "drain_s_median": _median([m["timing_s/drain"] + m.get("timing_s/drain_wait", 0.0) for m in trained
                                   if "timing_s/drain" in m]),
        "lag_min": min((m["atropos/lag/min"] for m in rows if "atropos/lag/min" in m), default=float("nan")),
        "lag_mean": _mean([m["atropos/lag/mean"] for m in rows if "atropos/lag/mean" in m]),
        "lag_max": max((m["atropos/lag/max"] for m in rows if "atropos/lag/max" in m), default=float("nan")),
        "stale_groups_rejected": sum(m.get("atropos/rejected/stale_policy_version", 0.0) for m in rows),
        "heldout_before": result["before"],
        "heldout_after": result["after"],
        "heldout_gain_points": 100 * result["gain"],
        "first_step_s": result.get("timings", {}).get("first_step_s", float("nan")),
        "total_s": result.get("timings", {}).get("total_s", float("nan")),
        "_start": walls[0] - rows[0].get("timing_s/step", 0.0) if walls else 0.0,
    }


def plot(curves: dict[str, tuple[list[float], list[float]]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for mode, (xs, ys) in curves.items():
        ax.plot(xs, ys, marker="o", label=mode)
    ax.set_xlabel("seconds since the first training step began")
    ax.set_ylabel("env eval accuracy (200 held-out pairs)")
    ax.set_title(f"CPU demo: {' vs '.join(curves)}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--modes", nargs="+", default=["hybrid", "async"], choices=list(RUNS))
    ap.add_argument("--max-batches-offpolicy", type=int, default=None,
                    help="the environment's max_batches_offpolicy (default: the demo config's)")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="async-vs-hybrid-"))
    work.mkdir(parents=True, exist_ok=True)
    config = CONFIG
    if args.max_batches_offpolicy is not None:
        doc = yaml.safe_load(CONFIG.read_text())
        for env in doc["environments"]:
            env["max_batches_offpolicy"] = args.max_batches_offpolicy
        config = work / CONFIG.name  # same name: the run (and its cached model) stays runs/cpu_demo
        config.write_text(yaml.safe_dump(doc, sort_keys=False))
    summaries: dict[str, dict[str, float]] = {}
    curves: dict[str, tuple[list[float], list[float]]] = {}
    for mode in args.modes:
        print(f"== {mode} ({work})", flush=True)
        # The same workdir keeps the warm-started model of the first run: both modes start from the same weights.
        result = run_demo(work, config, [*RUNS[mode], *args.overrides], keep_model=True)
        if result is None:
            return 1
        run_dir = work / "runs" / "cpu_demo"
        kept = work / "results" / mode
        kept.mkdir(parents=True, exist_ok=True)
        for name in KEEP:
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, kept / name)
        summaries[mode] = summarize(run_dir)
        start = summaries[mode].pop("_start")
        points = eval_points(run_dir / "eval_metrics.jsonl")
        curves[mode] = ([p["time"] - start for p in points], [p["accuracy"] for p in points])

    keys = [k for k in next(iter(summaries.values()))]
    print(f"\n| metric | {' | '.join(summaries)} |")
    print(f"|---|{'---|' * len(summaries)}")
    for key in keys:
        cells = " | ".join(f"{summaries[m][key]:.3f}" if isinstance(summaries[m][key], float) else
                           str(summaries[m][key]) for m in summaries)
        print(f"| {key} | {cells} |")
    out = work / "hybrid_vs_async.png"
    plot(curves, out)
    (work / "summary.json").write_text(json.dumps({"summaries": summaries, "curves": curves}, indent=1))
    print(f"\nplot: {out}\nsummary: {work / 'summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
