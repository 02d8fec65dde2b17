# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The API door's rejections as the trainer sees them: per step, what was rejected since the step before.

The door (`api_side.door_stats`) keeps running totals in `atropos.door_file`; the trainer adds each step's share to
its own rejection accounting (`reject_ceiling`, metrics, the end-of-run summary), and checks the door's streak while
it waits for a batch. The file is read only when it changed (one `stat` per call otherwise).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from atropos_verl.api_side.door_stats import read_door_stats


class DoorRejections:
    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.latest: dict[str, Any] | None = None
        self._version: tuple[int, int, int] | None = None  # (mtime, inode, size): each write replaces the file
        self._seen_by_reason: Counter[str] = Counter()
        self._seen_by_env: Counter[str] = Counter()

    def poll(self) -> dict[str, Any] | None:
        """The door's last published counts (None without a door file)."""
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return self.latest
        version = (st.st_mtime_ns, st.st_ino, st.st_size)
        if version != self._version:
            latest = read_door_stats(self.path)
            if latest is not None:
                self.latest, self._version = latest, version
        return self.latest

    def take(self) -> tuple[Counter[str], Counter[str]]:
        """Groups rejected at the door since the last call, by reason and by environment name."""
        latest = self.poll()
        if latest is None:
            return Counter(), Counter()
        by_reason, by_env = Counter(latest["by_reason"]), Counter(latest["by_env"])
        if by_reason.total() < self._seen_by_reason.total():  # the API restarted: its counts began again from zero
            self._seen_by_reason, self._seen_by_env = Counter(), Counter()
        new = (by_reason - self._seen_by_reason, by_env - self._seen_by_env)
        self._seen_by_reason, self._seen_by_env = by_reason, by_env
        return new


def door_metrics(by_reason: Counter[str]) -> dict[str, float]:
    """One step's door rejections: the total and one key per reason."""
    metrics = {"atropos/rejected_at_door": float(sum(by_reason.values()))}
    metrics.update({f"atropos/rejected_at_door/{reason}": float(n) for reason, n in by_reason.items()})
    return metrics
