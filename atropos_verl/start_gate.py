# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The launcher's go-ahead to the trainer: a file that exists once the environments' import check has passed.

The launcher starts the trainer while that check still runs (seconds: atroposlib imports torch), so the trainer's own
imports overlap it; the trainer waits here before it starts Ray and verl's workers. A bad environment still fails the
run in seconds, and the trainer it stops has started nothing of its own. A trainer started without the launcher
(no GATE_ENV) does not wait.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from atropos_verl.trainer.endpoints import write_atomic_json

GATE_ENV = "ATROPOS_VERL_START_GATE"
POLL_S = 0.05
# Longer than the import check's own limit (atropos_verl.launch.preflight.TIMEOUT_S), after which the launcher
# stops the trainer anyway.
WAIT_S = 300.0


def open_gate(path: Path) -> None:
    """Let the trainer go on (atomically: the trainer never sees a half-written file)."""
    write_atomic_json(path, {"opened": time.time()})


def await_gate(timeout_s: float = WAIT_S) -> float | None:
    """Block until the launcher opens the gate named by GATE_ENV; return the seconds waited (None without a gate).

    Raises TimeoutError after `timeout_s`: a launcher that neither opens the gate nor stops this process is gone.
    """
    raw = os.environ.get(GATE_ENV)
    if not raw:
        return None
    path = Path(raw)
    started = time.monotonic()
    while not path.exists():
        waited = time.monotonic() - started
        if waited > timeout_s:
            raise TimeoutError(f"the launcher did not open {path} within {timeout_s:.0f}s")
        time.sleep(POLL_S)
    return time.monotonic() - started
