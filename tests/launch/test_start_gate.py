# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The launcher-to-trainer start gate: no gate, a gate opened later, a gate never opened."""

from __future__ import annotations

import threading

import pytest

from atropos_verl.start_gate import GATE_ENV, await_gate, open_gate


def test_without_a_gate_nothing_waits(monkeypatch):
    monkeypatch.delenv(GATE_ENV, raising=False)
    assert await_gate(timeout_s=0.0) is None


def test_waits_until_the_launcher_opens_it(monkeypatch, tmp_path):
    gate = tmp_path / "start_gate"
    monkeypatch.setenv(GATE_ENV, str(gate))
    opener = threading.Timer(0.3, open_gate, args=(gate,))
    opener.start()
    try:
        assert await_gate(timeout_s=10.0) >= 0.25
    finally:
        opener.cancel()
    assert await_gate(timeout_s=0.0) == pytest.approx(0.0, abs=0.05)  # already open: no wait
    assert [p.name for p in tmp_path.iterdir()] == ["start_gate"]  # no temporary file left beside it


def test_a_gate_never_opened_times_out(monkeypatch, tmp_path):
    monkeypatch.setenv(GATE_ENV, str(tmp_path / "start_gate"))
    with pytest.raises(TimeoutError, match="did not open"):
        await_gate(timeout_s=0.2)
