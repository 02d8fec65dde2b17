# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Errors a launcher must report in one line before anything starts: unusable output_dir, a run dir already in use,
an environment that does not import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from atropos_verl.errors import ConfigError
from atropos_verl.launch.preflight import EnvironmentCheck, check_environments
from atropos_verl.launch.processes import session_members
from atropos_verl.launch.run_dir import RunDirLock, RunDirLocked, check_output_dir
from atropos_verl.startup_times import phases

CLI = str(Path(sys.executable).parent / "atropos-verl")


def test_lock_second_acquire_refuses_with_pid(tmp_path):
    held = RunDirLock(tmp_path / "run").acquire()
    code = ("import sys; from pathlib import Path; from atropos_verl.launch.run_dir import RunDirLock\n"
            f"RunDirLock(Path({str(tmp_path / 'run')!r})).acquire()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0
    assert f"already in use by launcher pid {os.getpid()}" in out.stderr
    with pytest.raises(RunDirLocked, match=str(os.getpid())):  # an fd of this process is a holder of its own
        RunDirLock(tmp_path / "run").acquire()
    with pytest.raises(RunDirLocked, match=str(os.getpid())):
        RunDirLock(tmp_path / "run").refuse_if_held()
    held.release()
    RunDirLock(tmp_path / "run").refuse_if_held()
    RunDirLock(tmp_path / "run").acquire().release()


def test_output_dir_not_a_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is not a directory"):
        check_output_dir(tmp_path / "file")
    with pytest.raises(ConfigError, match="parent .* is not a directory"):
        check_output_dir(tmp_path / "file" / "runs")
    check_output_dir(tmp_path / "new" / "runs")  # created later, fine


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_output_dir_not_writable(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="is not writable"):
            check_output_dir(ro)
    finally:
        ro.chmod(0o700)


def test_preflight_builtin_passes():
    check_environments(["addition"])


def test_environment_check_reports_at_wait_and_can_be_cancelled(tmp_path):
    """The check runs in its own interpreter while the launcher builds the model; `wait()` names each bad target."""
    bad = tmp_path / "needs_foo.py"
    bad.write_text("import foo_not_installed_anywhere\n")
    check = EnvironmentCheck(["addition", str(bad)])
    assert check._proc is not None  # started, not finished: the constructor does not wait for the import
    with pytest.raises(ConfigError) as err:
        check.wait()
    assert str(err.value) == f"environments: {bad}: ModuleNotFoundError: No module named 'foo_not_installed_anywhere'"

    running = EnvironmentCheck(["addition"])
    proc = running._proc
    running.cancel()
    assert proc.returncode is not None and running._proc is None
    running.cancel()  # idempotent, as the launcher's error paths may call it twice


def _run_cli(tmp_path: Path, env_file: Path, output_dir: str = "runs",
             verl: list[str] | None = None) -> tuple[subprocess.CompletedProcess, float]:
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({"run_name": "r", "output_dir": output_dir, "model_path": str(model),
                                   "environments": [{"env": str(env_file)}], "verl": verl or []}))
    t0 = time.monotonic()
    out = subprocess.run([CLI, "run", str(cfg), "--plain"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    return out, time.monotonic() - t0


def _error_lines(out: subprocess.CompletedProcess) -> list[str]:
    return [line for line in out.stderr.splitlines() if not line[:4].isdigit()]  # logging lines carry a timestamp


def test_syntax_error_env_fails_before_anything_starts(tmp_path):
    bad = tmp_path / "bad_env.py"
    bad.write_text("import os\n\ndef broken(:\n    pass\n")
    out, took = _run_cli(tmp_path, bad)
    assert out.returncode != 0 and took < 15, (took, out.stderr)
    assert _error_lines(out) == [f"error: environments: {bad}: SyntaxError: invalid syntax (line 3)"], out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "runs" / "r" / "processes.json").exists()
    assert not (tmp_path / "runs" / "r" / "logs").exists()


def test_missing_module_env_fails_in_seconds(tmp_path):
    bad = tmp_path / "needs_foo.py"
    bad.write_text("import foo_not_installed_anywhere\n")
    out, took = _run_cli(tmp_path, bad)
    assert out.returncode != 0 and took < 15, (took, out.stderr)
    assert _error_lines(out) == [
        f"error: environments: {bad}: ModuleNotFoundError: No module named 'foo_not_installed_anywhere'"
    ], out.stderr
    _assert_nothing_left(tmp_path / "runs" / "r")


def _assert_nothing_left(run_dir: Path) -> list[str]:
    """No process of the run alive, no environment or Ray started; the phases recorded, in order."""
    recorded = [name for name, _ in phases(run_dir)]
    processes = run_dir / "processes.json"
    started = json.loads(processes.read_text()) if processes.exists() else []
    assert {child["role"] for child in started} <= {"api", "trainer"}, started
    assert not [p.pid for child in started for sid in child["sessions"] for p in session_members(sid)], started
    assert not {"launcher/envs_checked", "trainer/start_gate", "trainer/ray_ready"} & set(recorded), recorded
    return recorded


def test_trainer_waits_for_the_import_check_before_starting_ray(tmp_path):
    """The trainer imports while the environments' import check runs, then waits at the start gate: an environment
    that fails its import seconds later stops the run before the trainer has started Ray (which takes ~4 s)."""
    run_dir = tmp_path / "runs" / "r"
    slow = tmp_path / "slow_then_broken.py"
    slow.write_text(
        "import pathlib, time\n"
        f"path = pathlib.Path({str(run_dir / 'startup.jsonl')!r})\n"
        "deadline = time.monotonic() + 60\n"
        "while time.monotonic() < deadline and (not path.exists() or '\"config_ready\"' not in path.read_text()):\n"
        "    time.sleep(0.1)\n"
        "time.sleep(8)\n"
        "import foo_not_installed_anywhere\n"
    )
    tiny = yaml.safe_load((Path(__file__).parents[2] / "configs" / "cpu_tiny.yaml").read_text())
    out, _ = _run_cli(tmp_path, slow, verl=tiny["verl"])  # a trainer config that passes the trainer's own checks
    assert out.returncode != 0
    assert _error_lines(out) == [
        f"error: environments: {slow}: ModuleNotFoundError: No module named 'foo_not_installed_anywhere'"
    ], out.stderr
    recorded = _assert_nothing_left(run_dir)
    assert "trainer/config_ready" in recorded, recorded  # the trainer had imported verl and reached the gate


def test_unusable_output_dir_is_one_line(tmp_path):
    (tmp_path / "runs").write_text("not a dir")
    out, _ = _run_cli(tmp_path, tmp_path / "x.py")
    assert out.returncode == 2
    assert _error_lines(out) == ["error: runs: output_dir is not a directory"], out.stderr
