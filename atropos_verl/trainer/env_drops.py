# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Groups the environments never posted: atroposlib drops a group whose longest sequence reaches the trainer's
`max_token_len` (prompt cap + response cap + 1) before it reaches the API, leaving only a warning in the environment's
log. The env side counts those drops in each process's status record (`skipped_too_long`, `env_side/posting.py`);
this sums them, with the groups posted, over `<run dir>/envs/*.status.json`, so the trainer can tell, while it waits,
that its environments generate without posting anything (`reject_ceiling.RejectionCeiling.check_env_drops`).

Every rollout task that ended without a group is counted too, with why (`items_without_group`,
`without_group/<reason>`: equal scores, a group shorter than group_size, too long, an exception, or nothing returned
by the environment itself): `waiting_summary` puts them into the message of a wait that timed out, and the live view
and doctor show them (`without_group_phrase`).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from .env_names import status_records


class EnvDrops:
    def __init__(self, status_dir: str | Path, *, min_interval: float = 1.0):
        self.status_dir = Path(status_dir)
        self.min_interval = min_interval
        self._read_at = float("-inf")
        self._skipped: Counter[str] = Counter()
        self._posted = 0
        self._marked_skipped: Counter[str] = Counter()
        self._marked_posted = 0
        self._mark_pending = False

    def _read(self) -> None:
        skipped: Counter[str] = Counter()
        posted = 0
        for name, record in status_records(self.status_dir).items():
            try:
                skipped[name] = int(record.get("skipped_too_long") or 0)
                posted += int(record.get("groups_posted") or 0)
            except (ValueError, TypeError):
                continue
        self._skipped, self._posted, self._read_at = skipped, posted, time.monotonic()

    def mark(self) -> None:
        """A batch arrived: count from the next wait on (read then, so a step whose batch is ready reads nothing)."""
        self._mark_pending = True

    def since_mark(self) -> tuple[Counter[str], int]:
        """Groups dropped as too long per environment, and groups posted, since the last batch (files re-read at
        most every `min_interval` s). A restarted environment process starts its counts again from zero."""
        if self._mark_pending or time.monotonic() - self._read_at >= self.min_interval:
            self._read()
        if self._mark_pending:
            self._marked_skipped, self._marked_posted, self._mark_pending = Counter(self._skipped), self._posted, False
        return self._skipped - self._marked_skipped, max(self._posted - self._marked_posted, 0)


def without_group_phrase(record: dict[str, Any]) -> str | None:
    """"N of M items gave no group (equal_scores x5, ...)" from an environment's status record, else None."""
    nothing = int(record.get("items_without_group") or 0)
    if not nothing:
        return None
    reasons = sorted(((k.split("/", 1)[1], int(v)) for k, v in record.items() if k.startswith("without_group/")),
                     key=lambda item: (-item[1], item[0]))
    return (f"{nothing} of {int(record.get('items_started') or 0)} items gave no group ("
            + ", ".join(f"{reason} x{n}" for reason, n in reasons) + ")")


def waiting_summary(status_dir: str | Path) -> str:
    """What each environment did with its items, for the message of a wait for a batch that timed out."""
    parts = []
    for name, record in sorted(status_records(Path(status_dir)).items()):
        posted = int(record.get("groups_posted") or 0)
        phrase = without_group_phrase(record) or f"{int(record.get('items_started') or 0)} items started"
        parts.append(f"{name}: {posted} groups posted, {phrase}")
    return "; ".join(parts) if parts else "no environment status records"
