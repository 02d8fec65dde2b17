# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Nothing outlives the launcher, even `kill -9` of it: a process in its own session that waits for the launcher.

The launcher starts it first and keeps the write end of its stdin. A clean stop writes `stopped` and the watchdog
exits. EOF without it (the launcher died) or the launcher's pid gone (checked with its start time since boot against
pid reuse; not psutil's create_time, which a system clock step moves) means: stop every session in
`<run_dir>/processes.json` (re-read now: it grows with every child start), remove the run's temp dir, endpoints.json
and empty logger dirs, write `<run_dir>/leftovers.json`, exit.

    python -m atropos_verl.launch.watchdog PID STARTED_SINCE_BOOT RUN_DIR TEMP_DIR [EMPTY_DIR ...]
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import psutil

from atropos_verl.launch.processes import session_members, started_since_boot, stop_session, terminate
from atropos_verl.launch.run_temp import remove_run_files

STOPPED = b"stopped\n"
GRACE_S = 4.0  # SIGTERM -> SIGKILL per session; the whole clean-up must fit in 15 s


def start_watchdog(run_dir: Path, temp_dir: Path, empty_dirs: list[Path]) -> subprocess.Popen:
    """Start the watchdog for this process; call `stopped(proc)` after a clean stop."""
    me = psutil.Process()
    argv = [sys.executable, "-m", "atropos_verl.launch.watchdog", str(me.pid), repr(started_since_boot(me.pid)),
            str(run_dir), str(temp_dir), *map(str, empty_dirs)]
    log = open(run_dir / "logs" / "watchdog.log", "ab")  # noqa: SIM115 - closed right after the start
    try:
        return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    finally:
        log.close()


def stopped(proc: subprocess.Popen) -> None:
    """Tell the watchdog the launcher stopped everything itself, and wait for it to exit."""
    try:
        proc.stdin.write(STOPPED)
        proc.stdin.close()
    except (BrokenPipeError, OSError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _launcher_alive(pid: int, started: float) -> bool:
    try:
        return started_since_boot(pid) == started and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_for_launcher(pid: int, started: float) -> bool:
    """Block until the launcher stops; True when it said it stopped cleanly."""
    fd = sys.stdin.fileno()
    got = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            chunk = os.read(fd, 64)
            got += chunk
            if not chunk:
                return got == STOPPED
        elif not _launcher_alive(pid, started):
            return got == STOPPED


def clean_up(run_dir: Path, temp_dir: Path, empty_dirs: list[Path]) -> dict:
    """Stop every recorded session, remove the run's files; returns what was found alive and what survived."""
    try:
        record = json.loads((run_dir / "processes.json").read_text())
    except (OSError, ValueError):
        record = []
    sessions = [(child.get("name"), sid) for child in record for sid in child.get("sessions", [])]
    members = {(name, sid): session_members(sid) for name, sid in sessions}
    found = [{"name": name, "session": sid, "pid": p.pid} for (name, sid), ps in members.items() for p in ps]
    # All sessions at once (not one after another): SIGTERM, one grace period, SIGKILL what is left.
    terminate([], [sid for _, sid in sessions], grace=GRACE_S)
    # Late-comers (a process forked while we were signalling) get the same treatment, one session at a time.
    for _, sid in sessions:
        if session_members(sid):
            stop_session(sid, grace=2.0)
    survived = [{"name": name, "session": sid, "pid": p.pid} for name, sid in sessions for p in session_members(sid)]
    remove_run_files(temp_dir, run_dir / "endpoints.json", empty_dirs)
    return {"found_alive": found, "survived": survived, "watchdog_pid": os.getpid(), "time": time.time()}


def main(argv: list[str]) -> int:
    pid, started, run_dir, temp_dir, *empty = argv
    run_dir_p = Path(run_dir)
    if wait_for_launcher(int(pid), float(started)):
        return 0
    t0 = time.monotonic()
    report = clean_up(run_dir_p, Path(temp_dir), [Path(e) for e in empty])
    report["cleanup_s"] = round(time.monotonic() - t0, 2)
    (run_dir_p / "leftovers.json").write_text(json.dumps(report, indent=1))
    print(f"launcher {pid} died without stopping the run; cleaned up: {json.dumps(report)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
