# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Step progress: a rich bar on a terminal, one plain line per step elsewhere (CI logs stay greppable)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TextIO

SUMMARY_KEYS = (
    ("score", "critic/score/mean"),
    ("pg_loss", "actor/pg_loss"),
    ("kl", "actor/kl_loss"),
    ("resp_len", "response_length/mean"),
    ("rejected", "atropos/groups_rejected"),
)


def summary_line(step: int, total: int, metrics: Mapping[str, float]) -> str:
    wait = metrics.get("timing_s/atropos_wait", 0.0)
    train = metrics.get("timing_s/train", 0.0)
    sync = metrics.get("timing_s/sync", 0.0)
    parts = [f"step {step}/{total}", f"wait {wait:.2f}s", f"train {train:.2f}s", f"sync {sync:.2f}s"]
    parts += [f"{name} {float(metrics[key]):.4g}" for name, key in SUMMARY_KEYS if key in metrics]
    return " | ".join(parts)


class StepProgress:
    def __init__(self, total: int, start: int = 0, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stdout
        self._bar = None
        if self.stream.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("[bold]atropos-verl"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.description}"),
            )
            self._task = self._bar.add_task("", total=total, completed=start)
            self._bar.start()

    def update(self, step: int, metrics: Mapping[str, float]) -> None:
        line = summary_line(step, self.total, metrics)
        if self._bar is not None:
            self._bar.update(self._task, completed=step, description=line.split(" | ", 1)[-1])
        else:
            print(f"[atropos-verl] {line}", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
