# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""`atropos-verl envs check` for real: the builtin environment passes; fixture environments of our own pass or fail
with the cause named (a judge client of its own and no evaluate: passes, both reported; an unbuildable class: fails in
seconds at the import; requests over the served context: fails with OverContextError); `envs list` shows the last
verdicts; nothing is left running."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHECKOUT = ROOT / "tests" / "fixtures" / "conformance"
CLI = str(Path(sys.executable).parent / "atropos-verl")


def check(tmp_path: Path, env: str, *extra: str) -> tuple[subprocess.CompletedProcess, dict, float]:
    out = tmp_path / f"{Path(env).stem}.json"
    started = time.monotonic()
    done = subprocess.run([CLI, "envs", "check", env, "--json", str(out), "--workdir", str(tmp_path / Path(env).stem),
                           *extra], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env={**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path / "cache"),
                               "CONFORMANCE_TRAP_URL": "http://127.0.0.1:9/v1"})
    return done, (json.loads(out.read_text()) if out.is_file() else {}), time.monotonic() - started


def stages(record: dict) -> dict[str, bool | None]:
    return {s["name"]: s["ok"] for s in record["stages"]}


def test_the_builtin_environment_passes_and_envs_list_shows_it(tmp_path):
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    done, record, _ = check(tmp_path, "addition")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    assert "PASS: addition trains with verl" in done.stdout
    assert record["verdict"] == "pass" and all(stages(record).values()), record
    assert set(stages(record)) == {"imports", "class", "routing", "registration", "items started",
                                   "items scored to nothing", "groups posted", "gate", "conversion", "masks",
                                   "training step"}
    listed = subprocess.run([CLI, "envs", "list"], capture_output=True, text=True, timeout=120,
                            env={**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert "addition" in listed.stdout and "pass" in listed.stdout.split("addition", 2)[-1]
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before


def test_own_judge_and_no_evaluate_pass_and_are_reported(tmp_path):
    done, record, _ = check(tmp_path, "environments/judged.py", "--checkout", str(CHECKOUT))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    details = {s["name"]: s["detail"] for s in record["stages"]}
    assert details["class"].endswith("JudgedEnv, evaluation off")
    assert "built by the environment itself, not routed: judged.py:" in details["routing"]
    assert "AsyncOpenAI(base_url=trap_url()" in details["routing"]


def test_an_unbuildable_class_fails_at_the_import_in_seconds(tmp_path):
    done, record, seconds = check(tmp_path, "environments/half_built.py", "--checkout", str(CHECKOUT))
    assert done.returncode == 1
    assert record["verdict"] == "fail" and list(stages(record)) == ["imports"]
    assert "HalfBuiltEnv cannot be built: it does not implement evaluate, get_next_item" in record["cause"]
    assert "implement the methods named" in record["fix"] and record["run_dir"] is None
    assert seconds < 60


def test_requests_over_the_served_context_fail_with_the_cause(tmp_path):
    done, record, _ = check(tmp_path, "environments/over_context.py", "--checkout", str(CHECKOUT))
    assert done.returncode == 1, done.stdout[-3000:]
    assert "OverContextError" in record["cause"], record
    assert "max_model_len" in record["fix"]
    assert stages(record)["registration"] is True and stages(record)["groups posted"] is False


def test_data_opened_from_the_checkout_root_in_a_folder_that_is_no_identifier_passes(tmp_path):
    done, record, _ = check(tmp_path, "environments/data-env/reads_its_data.py", "--checkout", str(CHECKOUT))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    assert stages(record)["masks"] is True


def test_a_start_up_crash_is_the_cause(tmp_path):
    done, record, _ = check(tmp_path, "environments/crashes_at_start.py", "--checkout", str(CHECKOUT))
    assert done.returncode == 1
    assert "RuntimeError: the grader binary is missing: /opt/grader/bin/grade" in record["cause"], record
