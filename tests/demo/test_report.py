# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The closing report from the files a run writes, including a run killed mid-line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atropos_verl.demo.report import EVAL_NAME, PLOT_NAME, RESULT_NAME, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_run(run: Path, *, steps: int = 40, truncated: bool = False, flat: bool = False) -> None:
    """verl file-logger lines (one per step) and the env's eval lines every 10 steps, as a real run leaves them."""
    run.mkdir(parents=True, exist_ok=True)
    with (run / "metrics.jsonl").open("w") as f:
        for step in range(1, steps + 1):
            reward = 0.1 + 0.4 * step / steps
            if flat:
                f.write(json.dumps({"step": step, "atropos/env/addition/score_mean": reward, "timing_s/step": 0.5}))
            else:
                f.write(json.dumps({"step": step, "data": {"critic/score/mean": reward, "timing_s/step": 0.5}}))
            f.write("\n")
        if truncated:
            f.write(json.dumps({"step": steps + 1, "data": {"critic/score/mean": 0.9}})[:-8])
    with (run / EVAL_NAME).open("w") as f:
        for i, step in enumerate(range(0, steps + 1, 10)):
            acc = 0.15 + 0.1 * i
            record = {"step": step, "time": 1000.0 + 25 * i, "duration_s": 0.2, "eval/accuracy": acc}
            f.write(json.dumps({**record, "eval/num_items": 200}) + "\n")
        if truncated:
            f.write('{"step": 50, "time": 1125.0, "eval/accur')


def check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000


def test_given_before_after(tmp_path):
    write_run(tmp_path)
    line = write_report(tmp_path, before=0.123, after=0.4849, timings={"warm_start_s": 61.5}, heldout_items=1000)
    assert line == "held-out accuracy: 0.12 -> 0.48"
    check_png(tmp_path / PLOT_NAME)
    result = json.loads((tmp_path / RESULT_NAME).read_text())
    assert result["before"] == 0.123 and result["after"] == 0.4849
    assert result["gain"] == pytest.approx(0.3619)
    assert (result["before_step"], result["after_step"], result["trainer_steps"]) == (0, 40, 40)
    assert (result["before_source"], result["after_source"], result["eval_points"]) == ("given", "given", 5)
    assert result["heldout_items"] == 1000
    assert result["timings"] == {
        "trainer_step_s_total": pytest.approx(20.0),
        "trainer_step_s_mean": pytest.approx(0.5),
        "first_to_last_eval_s": pytest.approx(100.0),
        "warm_start_s": 61.5,
    }
    assert result["line"] == line


def test_falls_back_to_env_evals_and_tolerates_truncated_lines(tmp_path):
    write_run(tmp_path, truncated=True, flat=True)
    line = write_report(tmp_path)
    assert line == "held-out accuracy: 0.15 -> 0.55"
    check_png(tmp_path / PLOT_NAME)
    result = json.loads((tmp_path / RESULT_NAME).read_text())
    assert result["trainer_steps"] == 40 and result["eval_points"] == 5
    assert (result["before_step"], result["after_step"]) == (0, 40)
    assert (result["before_source"], result["after_source"]) == ("env eval", "env eval")
    assert result["gain"] == pytest.approx(0.4)


def test_resumed_metrics_extend_the_run(tmp_path):
    write_run(tmp_path, steps=20)
    with (tmp_path / "metrics.resumed-20.jsonl").open("w") as f:
        for step in range(21, 31):
            f.write(json.dumps({"step": step, "data": {"critic/score/mean": 0.9}}) + "\n")
    write_report(tmp_path, before=0.1, after=0.2)
    result = json.loads((tmp_path / RESULT_NAME).read_text())
    assert result["trainer_steps"] == 30 and result["after_step"] == 30


def test_nothing_to_report(tmp_path):
    """A run that died before its first step still gets a report rather than a traceback."""
    assert write_report(tmp_path / "empty") == "held-out accuracy: n/a -> n/a"
    check_png(tmp_path / "empty" / PLOT_NAME)
    result = json.loads((tmp_path / "empty" / RESULT_NAME).read_text())
    assert result["gain"] is None and result["trainer_steps"] == 0
