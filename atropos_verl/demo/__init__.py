# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The CPU demo's offline pieces: supervised warm start, held-out evaluation and the before/after report, plugged
into a run through its hooks (`atropos_verl.demo.hooks`).

They run without the training stack (plain transformers on CPU), so the demo can build its starting checkpoint and
score checkpoints on the addition environment's own split, prompt and metric.

The names below load on first use: the launcher imports `atropos_verl.demo.hooks` to check the run's hooks before
anything starts, and torch/transformers (seconds on the start-up's critical path) are needed only when a hook runs.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "heldout_accuracy": "atropos_verl.demo.heldout",
    "DemoResult": "atropos_verl.demo.report",
    "write_report": "atropos_verl.demo.report",
    "WarmStartResult": "atropos_verl.demo.warm_start",
    "warm_start": "atropos_verl.demo.warm_start",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
