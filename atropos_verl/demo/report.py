# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The demo's closing report: `held-out accuracy: BEFORE -> AFTER`, a JSON record and a PNG of the run.

Reads what the run already writes: the trainer's `metrics*.jsonl` (verl's file logger: `{"step", "data": {...}}`, one
line per step; mean reward is `critic/score/mean`, else the mean of `atropos/env/<id>/score_mean`) and the addition
env's eval JSONL (`{"step", "time", "duration_s", "eval/accuracy", "eval/num_items"}` per `evaluate()`). A run killed
mid-way leaves a truncated last line or no file at all; unreadable lines are skipped and whatever is there is reported.
BEFORE/AFTER are best passed in from `heldout_accuracy` on 1,000 pairs; without them the first and last env evals
(fewer items, noisier) stand in, and the record says which was used.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PLOT_NAME = "heldout_accuracy.png"
RESULT_NAME = "demo_result.json"
EVAL_NAME = "eval_metrics.jsonl"


@dataclass
class DemoResult:
    before: float | None
    after: float | None
    gain: float | None
    before_step: int | None
    after_step: int | None
    before_source: str
    after_source: str
    trainer_steps: int
    eval_points: int
    heldout_items: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    line: str = ""


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects in `path`, skipping blank, truncated or otherwise unparsable lines; [] if the file is absent."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _step(record: Mapping[str, Any]) -> int | None:
    step = _number(record.get("step"))
    return None if step is None else int(step)


def _metrics_files(run_dir: Path) -> list[Path]:
    """metrics.jsonl, then metrics.resumed-K.jsonl by K: a resumed run's lines replace the steps they repeat."""

    def order(path: Path) -> int:
        match = re.fullmatch(r"metrics\.resumed-(\d+)\.jsonl", path.name)
        return int(match.group(1)) if match else -1

    return sorted((p for p in run_dir.glob("metrics*.jsonl") if p.is_file()), key=order)


def trainer_steps(run_dir: Path) -> dict[int, dict[str, Any]]:
    """Step -> that step's metrics (the `data` dict of verl's file logger, or the flat line itself)."""
    steps: dict[int, dict[str, Any]] = {}
    for path in _metrics_files(run_dir):
        for record in read_jsonl(path):
            step = _step(record)
            data = record.get("data", record)
            if step is not None and isinstance(data, dict):
                steps[step] = data
    return dict(sorted(steps.items()))


def mean_reward(metrics: Mapping[str, Any]) -> float | None:
    if (score := _number(metrics.get("critic/score/mean"))) is not None:
        return score
    env_means = [
        v
        for k, raw in metrics.items()
        if k.startswith("atropos/env/") and k.endswith("/score_mean") and (v := _number(raw)) is not None
    ]
    return sum(env_means) / len(env_means) if env_means else None


def eval_points(path: Path) -> list[dict[str, float]]:
    """The env's evals in step order (ties in write order): step, accuracy, num_items, time, duration_s."""
    points = []
    for record in read_jsonl(path):
        step, accuracy = _step(record), _number(record.get("eval/accuracy"))
        if step is None or accuracy is None:
            continue
        points.append(
            {
                "step": step,
                "accuracy": accuracy,
                "num_items": _number(record.get("eval/num_items")) or 0.0,
                "time": _number(record.get("time")) or 0.0,
                "duration_s": _number(record.get("duration_s")) or 0.0,
            }
        )
    return sorted(points, key=lambda p: p["step"])


def result_line(before: float | None, after: float | None) -> str:
    def fmt(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.2f}"

    return f"held-out accuracy: {fmt(before)} -> {fmt(after)}"


def summarize(
    run_dir: str | Path,
    *,
    before: float | None = None,
    after: float | None = None,
    timings: Mapping[str, float] | None = None,
    eval_file: str = EVAL_NAME,
    heldout_items: int | None = None,
) -> tuple[DemoResult, list[tuple[int, float]], list[dict[str, float]]]:
    """(result, reward curve, eval curve) of a run directory; nothing is written."""
    run = Path(run_dir)
    steps = trainer_steps(run)
    rewards = [(s, r) for s, m in steps.items() if (r := mean_reward(m)) is not None]
    evals = eval_points(run / eval_file)
    last_step = max([*steps, *(int(p["step"]) for p in evals)], default=None)

    before_step: int | None = 0
    before_source = after_source = "given"
    if before is None:
        before_source = "env eval" if evals else "missing"
        before, before_step = (evals[0]["accuracy"], int(evals[0]["step"])) if evals else (None, None)
    after_step = last_step
    if after is None:
        after_source = "env eval" if len(evals) > 1 else "missing"
        after, after_step = (evals[-1]["accuracy"], int(evals[-1]["step"])) if len(evals) > 1 else (None, None)

    step_times = [t for m in steps.values() if (t := _number(m.get("timing_s/step"))) is not None]
    times: dict[str, float] = {}
    if step_times:
        times["trainer_step_s_total"] = sum(step_times)
        times["trainer_step_s_mean"] = sum(step_times) / len(step_times)
    if len(evals) > 1 and evals[-1]["time"] and evals[0]["time"]:
        times["first_to_last_eval_s"] = max(p["time"] for p in evals) - min(p["time"] for p in evals)
    times.update({k: float(v) for k, v in (timings or {}).items()})

    result = DemoResult(
        before=before,
        after=after,
        gain=None if before is None or after is None else after - before,
        before_step=before_step,
        after_step=after_step,
        before_source=before_source,
        after_source=after_source,
        trainer_steps=max(steps, default=0),
        eval_points=len(evals),
        heldout_items=heldout_items,
        timings=times,
        line=result_line(before, after),
    )
    return result, rewards, evals


def _moving_average(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot(
    result: DemoResult, rewards: Iterable[tuple[int, float]], evals: Iterable[Mapping[str, float]], path: Path
) -> Path:
    """Two panels over trainer steps: held-out accuracy (env evals, BEFORE/AFTER marked) and mean training reward."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rewards, evals = list(rewards), list(evals)
    fig, (acc_ax, reward_ax) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, constrained_layout=True)
    if evals:
        n_items = int(evals[-1]["num_items"])
        label = f"env eval ({n_items} held-out pairs)" if n_items else "env eval"
        acc_ax.plot([p["step"] for p in evals], [p["accuracy"] for p in evals], "o-", color="tab:blue", label=label)
    for name, source, step, value, color, offset in (
        ("before", result.before_source, result.before_step, result.before, "tab:gray", (8, 6)),
        ("after", result.after_source, result.after_step, result.after, "tab:green", (-34, 8)),
    ):
        if step is None or value is None:
            continue
        if source == "given" and result.heldout_items:
            name = f"{name} ({result.heldout_items} held-out pairs)"
        acc_ax.plot([step], [value], marker="*", markersize=16, linestyle="none", color=color, label=name)
        acc_ax.annotate(f"{value:.2f}", (step, value), textcoords="offset points", xytext=offset, color=color)
    acc_ax.set_ylabel("held-out exact match")
    acc_ax.set_ylim(-0.02, 1.02)
    acc_ax.grid(alpha=0.3)
    title = result.line if result.gain is None else f"{result.line} ({result.gain:+.2f})"
    acc_ax.set_title(title)
    if acc_ax.has_data():
        acc_ax.legend(loc="upper left", fontsize="small")

    if rewards:
        xs, ys = [s for s, _ in rewards], [r for _, r in rewards]
        reward_ax.plot(xs, ys, color="tab:orange", alpha=0.3, linewidth=1, label="per step")
        window = max(1, len(ys) // 20)
        if window > 1:
            reward_ax.plot(xs, _moving_average(ys, window), color="tab:orange", label=f"mean of {window} steps")
        reward_ax.legend(loc="upper left", fontsize="small")
    else:
        reward_ax.text(0.5, 0.5, "no trainer metrics", ha="center", va="center", transform=reward_ax.transAxes)
    reward_ax.set_ylabel("mean training reward")
    reward_ax.set_xlabel("trainer step")
    reward_ax.set_ylim(-0.02, 1.02)
    reward_ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(
    run_dir: str | Path,
    *,
    before: float | None = None,
    after: float | None = None,
    timings: Mapping[str, float] | None = None,
    eval_file: str = EVAL_NAME,
    heldout_items: int | None = None,
) -> str:
    """Write `heldout_accuracy.png` and `demo_result.json` into `run_dir`; return `held-out accuracy: B -> A`.

    `heldout_items` is how many held-out pairs the given BEFORE/AFTER were measured on (recorded and shown).
    """
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    result, rewards, evals = summarize(
        run, before=before, after=after, timings=timings, eval_file=eval_file, heldout_items=heldout_items
    )
    plot(result, rewards, evals, run / PLOT_NAME)
    (run / RESULT_NAME).write_text(json.dumps(asdict(result), indent=2) + "\n", encoding="utf-8")
    return result.line
