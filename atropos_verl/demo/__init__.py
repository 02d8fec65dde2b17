# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The CPU demo's offline pieces: supervised warm start, held-out evaluation and the before/after report, plugged
into a run through its hooks (`atropos_verl.demo.hooks`).

They run without the training stack (plain transformers on CPU), so the demo can build its starting checkpoint and
score checkpoints on the addition environment's own split, prompt and metric.
"""

from atropos_verl.demo.heldout import heldout_accuracy
from atropos_verl.demo.report import DemoResult, write_report
from atropos_verl.demo.warm_start import WarmStartResult, warm_start

__all__ = ["DemoResult", "WarmStartResult", "heldout_accuracy", "warm_start", "write_report"]
