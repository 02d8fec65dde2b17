# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Keep every rejected Atropos group, with why and when, so a broken environment can be debugged after the fact.

Rejected groups never reach the optimizer (`batch.groups_to_dataproto` decides), but silently dropping them would hide
an environment that emits malformed data for hours. One JSON line per group: step, reason, env id and the raw group
exactly as the API delivered it.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from atropos_verl.group_rules import env_id_of


def _jsonable(value: Any) -> Any:
    """Raw groups may hold NaN/inf (often the very reason they were rejected); keep them readable as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class QuarantineFile:
    """Append-only JSONL of rejected groups; each write is flushed so a crash loses nothing already seen."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(
        self,
        step: int,
        groups: Sequence[Any],
        rejected: Sequence[tuple[int, str]],
        env_name: Callable[[Any], str | None] | None = None,
        source: str = "trainer",
    ) -> Counter[str]:
        """Append one line per rejected (group_index, reason); returns the count per reason.

        `source` says who rejected it: "api" (the API's door, before queueing) or "trainer" (after `/batch`).
        Both append to the same file, one `write` per line, so their lines never interleave.
        """
        counts: Counter[str] = Counter()
        if not rejected:
            return counts
        now = time.time()
        with self.path.open("a", encoding="utf-8") as fh:
            for index, reason in rejected:
                group = groups[index]
                env_id = env_id_of(group)
                record = {
                    "time": now,
                    "step": step,
                    "source": source,
                    "reason": reason,
                    "group_index": index,
                    "env_id": env_id,
                    "env": env_name(env_id) if env_name else None,
                    "group": _jsonable(group),
                }
                fh.write(json.dumps(record, allow_nan=False) + "\n")
                fh.flush()
                counts[reason] += 1
        return counts

    def read(self) -> list[dict[str, Any]]:
        """All records so far (tests and post-mortems)."""
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
