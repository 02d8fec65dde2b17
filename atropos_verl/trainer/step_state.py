# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""What the trainer saves in place of verl's dataloader state.

verl's `_save_checkpoint` / `_load_checkpoint` (`verl/trainer/ppo/ray_trainer.py:983-1117`) persist the actor and
then `self.train_dataloader.state_dict()` into `global_step_<k>/data.pt`. An Atropos run has no dataloader: the data
position lives in the trajectory API. This object takes the dataloader's place so verl's own save/load run unchanged,
and records the step the API was registered at, so a resumed run can tell whether the API kept counting.
"""

from __future__ import annotations

from typing import Any


class AtroposStepState:
    """Stands in for `StatefulDataLoader` (`state_dict`, `load_state_dict`, `len`) in verl's checkpoint code."""

    def __init__(self, total_steps: int) -> None:
        self.total_steps = int(total_steps)
        self.api_step = 0
        self.restored: dict[str, Any] | None = None

    def __len__(self) -> int:
        # verl divides the restored step by this to detect an epoch boundary; one "epoch" is the whole run.
        return max(self.total_steps, 1)

    def state_dict(self) -> dict[str, Any]:
        return {"source": "atropos", "api_step": self.api_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.restored = dict(state)
        self.api_step = int(state.get("api_step", 0))
