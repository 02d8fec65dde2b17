# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Shared-memory segments our processes leave in /dev/shm, and their removal.

Every vLLM engine start leaves its message-queue segments (`psm_*`, hundreds of MiB apparent size) after the
processes exit, and a failed weight sync leaves verl's `verl_weights_*` bucket (created in
`verl/workers/rollout/vllm_rollout/bucketed_weight_transfer.py` `_init_buffer`, unlinked only on success). Only
segments that did not exist at `snapshot()` time AND were seen in use by one of our processes are ever removed,
so concurrent jobs on the same host keep theirs.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

SHM_DIR = Path("/dev/shm")
PATTERNS: tuple[str, ...] = ("psm_*", "verl_weights_*")


def list_segments(patterns: Iterable[str] = PATTERNS, shm_dir: Path = SHM_DIR) -> set[str]:
    try:
        names = os.listdir(shm_dir)
    except OSError:
        return set()
    pats = tuple(patterns)
    return {n for n in names if any(fnmatch.fnmatch(n, p) for p in pats)}


def segments_used_by(pids: Iterable[int], shm_dir: Path = SHM_DIR) -> set[str]:
    """Names under `shm_dir` that the given processes have mapped or open (from /proc)."""
    prefix = str(shm_dir).rstrip("/") + "/"
    used: set[str] = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps") as f:
                for line in f:
                    i = line.find(prefix)
                    if i >= 0:
                        used.add(line[i + len(prefix) :].strip().removesuffix(" (deleted)"))
        except OSError:
            pass
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith(prefix):
                    used.add(target[len(prefix) :].removesuffix(" (deleted)"))
        except OSError:
            pass
    return used


@dataclass
class ShmTracker:
    """Records /dev/shm before our processes start, learns which new segments they use, removes those at the end."""

    patterns: tuple[str, ...] = PATTERNS
    shm_dir: Path = SHM_DIR
    before: frozenset[str] = field(default_factory=frozenset)
    ours: set[str] = field(default_factory=set)

    def snapshot(self) -> ShmTracker:
        self.before = frozenset(list_segments(self.patterns, self.shm_dir))
        return self

    def new_segments(self) -> set[str]:
        return list_segments(self.patterns, self.shm_dir) - self.before

    def observe(self, pids: Iterable[int]) -> set[str]:
        """Mark new segments that `pids` (our process tree) have mapped/open as ours; call while they run."""
        found = segments_used_by(pids, self.shm_dir) & self.new_segments()
        self.ours |= found
        return found

    def cleanup(self) -> list[str]:
        """Unlink our segments that still exist; returns the names removed."""
        removed = []
        for name in sorted(self.ours & self.new_segments()):
            try:
                (self.shm_dir / name).unlink()
                removed.append(name)
            except FileNotFoundError:
                pass
        return removed
