# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The API door's counts of what it let through and what it rejected, published as a small JSON file for the trainer.

A group the door rejects never reaches a batch, so the trainer's own rejection ceiling cannot see it: an environment
whose every group is refused would post as fast as it can (nothing it sends fills the queue that throttles it), fill
the quarantine file, and the run would wait for a batch until `poll_timeout`. The trainer reads this file on every
step and while it waits (`trainer.door_rejections`) and ends such a run.

`streak` counts groups rejected since the last group the door let through, from any environment.
Writes are atomic (temporary file, then rename) and at most one per `min_interval` s: a flood of rejected posts costs
the API one small write a quarter second, and the last change is always written (a timer flushes it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class DoorStats:
    def __init__(self, path: str | Path | None, *, min_interval: float = 0.25):
        self.path = Path(path) if path else None
        self.min_interval = min_interval
        self.accepted = 0
        self.rejected = 0
        self.by_reason: Counter[str] = Counter()
        self.by_env: Counter[str] = Counter()
        self.streak = 0
        self.streak_by_reason: Counter[str] = Counter()
        self.last: dict[str, Any] | None = None
        self._written_at = 0.0
        self._flush_pending = False
        self._write_failed = False
        self.write()  # this API's counts from its start, in place of any an earlier API left

    def let_through(self, groups: int) -> None:
        """`groups` groups passed the door and went to atroposlib's queue."""
        if groups <= 0:
            return
        self.accepted += groups
        self.streak = 0
        self.streak_by_reason.clear()
        self._publish()

    def refused(self, records: Iterable[tuple[str, str | None, str]]) -> None:
        """Rejected groups, each as (reason, environment name or None, detail such as the lengths; may be "")."""
        for reason, env, detail in records:
            self.rejected += 1
            self.streak += 1
            self.by_reason[reason] += 1
            self.streak_by_reason[reason] += 1
            self.by_env[env or "unknown"] += 1
            self.last = {"reason": reason, "env": env, "detail": detail}
        self._publish()

    def snapshot(self) -> dict[str, Any]:
        return {
            "time": time.time(),
            "accepted": self.accepted,
            "rejected": self.rejected,
            "by_reason": dict(self.by_reason),
            "by_env": dict(self.by_env),
            "streak": self.streak,
            "streak_by_reason": dict(self.streak_by_reason),
            "last": self.last,
        }

    def _publish(self) -> None:
        if self.path is None or self._flush_pending:
            return
        wait = self._written_at + self.min_interval - time.monotonic()
        if wait <= 0:
            self.write()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called outside the server's loop (tests, tools): nothing to schedule on
            self.write()
            return
        self._flush_pending = True
        loop.call_later(wait, self.write)

    def write(self) -> None:
        """Write the counts now (atomic)."""
        self._flush_pending = False
        self._written_at = time.monotonic()
        if self.path is None:
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(self.snapshot()), encoding="utf-8")
            tmp.replace(self.path)
        except OSError as exc:  # publishing counts must never fail a post; say so once
            if not self._write_failed:
                logger.warning("cannot write the door's counts to %s: %s", self.path, exc)
            self._write_failed = True


def read_door_stats(path: str | Path) -> dict[str, Any] | None:
    """The last counts the door wrote, or None when there is no file (an API started without the door file) or it
    cannot be read: the counts inform the trainer and the live view, and must never stop either."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
