# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""A run that learns nothing says so: a ceiling on the quarantined fraction, and a summary by reason and environment.

Quarantine keeps one broken environment from poisoning training, but a run whose every group is rejected would
otherwise "finish" with exit 0 having trained on nothing. `atropos.reject_ceiling` (default: every group of 5
consecutive steps rejected) ends such a run with an error naming the top reasons.

Groups the API's door rejects count too (`door_rejections`), and they need a check of their own: when the door
rejects everything, no batch ever forms and no step ends. While the trainer waits, `steps` batches' worth of groups
rejected at the door in a row, none let through, end the run with the reasons and the lengths that broke the caps.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any


class NothingToLearnError(RuntimeError):
    """The quarantined fraction stayed at or above the ceiling for the configured number of consecutive steps."""


class RejectionCeiling:
    def __init__(self, *, steps: int, fraction: float, groups_per_step: int = 1):
        if steps < 1 or not 0 < fraction <= 1:
            raise ValueError(f"atropos.reject_ceiling: need steps >= 1 and 0 < fraction <= 1, got {steps}, {fraction}")
        self.steps = steps
        self.fraction = fraction
        #: Groups rejected at the door in a row, none let through, that end the run: `steps` batches' worth.
        self.door_streak_limit = steps * max(int(groups_per_step), 1)
        self.streak = 0
        self.by_reason: Counter[str] = Counter()
        self.by_env: Counter[str] = Counter()
        self.received = 0
        self.rejected = 0
        self._streak_reasons: Counter[str] = Counter()

    def record(self, received: int, by_reason: Mapping[str, int], by_env: Mapping[str, int]) -> None:
        """One step: `received` groups, the rejected ones counted by reason and by environment name."""
        rejected = sum(by_reason.values())
        self.received += received
        self.rejected += rejected
        self.by_reason.update(by_reason)
        self.by_env.update(by_env)
        if received and rejected / received >= self.fraction:
            self.streak += 1
            self._streak_reasons.update(by_reason)
        else:
            self.streak = 0
            self._streak_reasons.clear()

    def check(self) -> None:
        if self.streak >= self.steps:
            top = ", ".join(f"{reason} x{count}" for reason, count in self._streak_reasons.most_common(3))
            raise NothingToLearnError(
                f"{self.streak} consecutive steps had at least {self.fraction:.0%} of their groups quarantined "
                f"(atropos.reject_ceiling: steps={self.steps}, fraction={self.fraction}); top reasons: {top}. "
                "The run is learning nothing: see the quarantine file for the groups and fix the environment."
            )

    def check_door(self, door: Mapping[str, Any] | None) -> None:
        """`door`: the API door's counts (`api_side.door_stats`); raises when its streak reached the limit."""
        if not door or int(door.get("streak", 0)) < self.door_streak_limit:
            return
        reasons = Counter(door.get("streak_by_reason") or {})
        top = ", ".join(f"{reason} x{count}" for reason, count in reasons.most_common(3))
        last = door.get("last") or {}
        example = ""
        if last:
            example = f"; the last, from {last.get('env') or 'an unknown environment'}: {last.get('reason')}"
        if last.get("detail"):
            example += f" ({last['detail']})"
        raise NothingToLearnError(
            f"the Atropos API's door rejected the last {door['streak']} groups the environments posted and let "
            f"none through ({self.steps} batches' worth, atropos.reject_ceiling.steps={self.steps}); "
            f"reasons: {top}{example}. "
            "No batch can form: fix the environment or the trainer's caps (data.max_prompt_length, "
            "data.max_response_length); the rejected groups are in the quarantine file."
        )

    def check_env_drops(self, dropped: Mapping[str, int], posted: int, *, max_prompt: int, max_response: int) -> None:
        """`dropped`: groups each environment's atroposlib dropped as too long since the last batch (`env_drops`);
        `posted`: groups the environments posted meanwhile. Raises when they dropped the limit's worth, posted none."""
        total = sum(dropped.values())
        if posted or total < self.door_streak_limit:
            return
        envs = ", ".join(f"{env} x{n}" for env, n in Counter(dropped).most_common(3) if n)
        raise NothingToLearnError(
            f"the environments dropped {total} groups before posting them and posted none since the last batch "
            f"({self.steps} batches' worth, atropos.reject_ceiling.steps={self.steps}); by environment: {envs}. "
            f"atroposlib drops a group whose longest sequence reaches the trainer's max_token_len "
            f"{max_prompt + max_response + 1} (data.max_prompt_length={max_prompt} + data.max_response_length="
            f"{max_response} + 1): the environments' prompts are likely longer than the prompt cap. Raise it (the "
            "served context must hold both caps) or shorten the prompts."
        )

    def summary(self) -> str:
        if not self.rejected:
            return f"quarantine: 0 of {self.received} groups rejected"
        reasons = ", ".join(f"{r} {c}" for r, c in self.by_reason.most_common())
        envs = ", ".join(f"{e} {c}" for e, c in self.by_env.most_common())
        return (
            f"quarantine: {self.rejected} of {self.received} groups rejected; by reason: {reasons}; "
            f"by environment: {envs}"
        )
