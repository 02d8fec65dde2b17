# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Deadlines for hybrid-mode control calls, and removal of our /dev/shm segments only."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from multiprocessing import shared_memory

import pytest

from atropos_verl import shm
from atropos_verl.trainer import deadline
from tests.e2e import sync_calls as sync


class _BlockedManager:
    """Stands in for a CheckpointEngineManager whose sender waits forever (what verl does when the receiver dies)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def update_weights(self, global_steps=None):
        self.release.wait()
        return {"steps": global_steps}


def test_update_weights_times_out_with_a_hint():
    mgr = _BlockedManager()
    with pytest.raises(deadline.RolloutTimeoutError, match=r"worker_extension_cls \(atropos_verl\.platform"):
        sync.update_weights(mgr, 3, timeout_s=0.3)
    mgr.release.set()
    assert sync.update_weights(mgr, 4, timeout_s=5) == {"steps": 4}


def test_errors_propagate():
    def boom():
        raise KeyError("x")

    with pytest.raises(KeyError):
        deadline.call_with_timeout(boom, timeout_s=5, what="t")


def test_shm_tracker_removes_only_our_new_segments(tmp_path):
    tracker = shm.ShmTracker().snapshot()
    ours = shared_memory.SharedMemory(name=f"psm_{uuid.uuid4().hex[:8]}", create=True, size=4096)
    # A segment someone else created and holds open: new, matches the pattern, but not ours.
    other_name = f"psm_{uuid.uuid4().hex[:8]}"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from multiprocessing import shared_memory as s, resource_tracker as r\n"
            f"m = s.SharedMemory(name='{other_name}', create=True, size=4096); r.unregister(m._name, 'shared_memory')\n"
            "print('ok', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ok"
        assert {ours.name, other_name} <= tracker.new_segments()
        assert tracker.observe([os.getpid()]) == {ours.name}
        ours.close()
        assert tracker.cleanup() == [ours.name]
        assert ours.name not in shm.list_segments() and other_name in shm.list_segments()
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
        try:
            os.unlink(f"/dev/shm/{other_name}")
        except FileNotFoundError:
            pass
        try:
            ours.unlink()
        except FileNotFoundError:
            pass


def test_sync_hint_names_an_extension_only_when_one_is_configured():
    assert "worker_extension_cls (my.Ext)" in deadline.sync_hint("my.Ext")
    assert "worker_extension_cls" not in deadline.sync_hint(None)
