# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""When each phase of a run's start-up ended, appended by the launcher and the trainer to `<run dir>/startup.jsonl`.

The first training step comes minutes after `atropos-verl run`, spread over two processes (the launcher builds the
model and starts the API; the trainer starts Ray, verl's workers and inference servers, then waits for the
environments' first batch). One file that both append to says where that time went;
`benchmarks/bench_step_breakdown.py` prints it. A resumed trainer appends again; readers take the first record.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

STARTUP_FILE = "startup.jsonl"


def record(run_dir: str | Path | None, who: str, phase: str, at: float | None = None) -> None:
    """Append that `who` ("launcher" or "trainer") finished `phase` at wall time `at` (now by default)."""
    if not run_dir:
        return
    path = Path(run_dir) / STARTUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"who": who, "phase": phase, "time": time.time() if at is None else at})
    with path.open("a", encoding="utf-8") as fh:  # one write per line: the two processes never interleave
        fh.write(line + "\n")


def start_over(run_dir: str | Path) -> None:
    """A new launch: the previous run's records no longer describe this one."""
    (Path(run_dir) / STARTUP_FILE).unlink(missing_ok=True)


#: Fields of an environment's status file (`env_side.posting.EnvStatus`) that are start-up phases of that process.
ENV_PHASES = {"started": "started", "imported": "imported", "time": "registered", "first_post_time": "first_post"}


def phases(run_dir: str | Path) -> list[tuple[str, float]]:
    """("who/phase", seconds since the launcher's `command` record), first occurrence of each, in time order.

    Environments are "env:NAME" with the times their status file holds (its latest process, if one restarted)."""
    path = Path(run_dir) / STARTUP_FILE
    if not path.is_file():
        return []
    first: dict[str, float] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            first.setdefault(f"{rec['who']}/{rec['phase']}", float(rec["time"]))
    for status_file in sorted((Path(run_dir) / "envs").glob("*.status.json")):
        try:
            status = json.loads(status_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # being rewritten or gone: the table goes without it
            continue
        name = status_file.name.removesuffix(".status.json")
        for field, phase in ENV_PHASES.items():
            if isinstance(status.get(field), int | float):
                first.setdefault(f"env:{name}/{phase}", float(status[field]))
    origin = first.get("launcher/command", min(first.values(), default=0.0))
    return sorted(((name, at - origin) for name, at in first.items()), key=lambda item: item[1])
