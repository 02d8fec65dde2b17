# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Child processes we own: started in their own process group, stopped by that group, never by name."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free right now on `host` (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on host:port now. Like uvicorn, SO_REUSEADDR: connections lingering in
    TIME_WAIT after a server stopped do not make its port busy, a listener does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def wait_http_ok(
    url: str,
    *,
    proc: subprocess.Popen | None,
    timeout: float,
    what: str,
    log_path: Path | None = None,
    interval: float = 0.2,
) -> None:
    """Poll `url` until it answers 200; fail early (RuntimeError) if `proc` exits, TimeoutError after `timeout` s."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}; see {log_path}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(interval)
    raise TimeoutError(f"{what} at {url} not ready after {timeout:.0f}s; see {log_path}")


def start_process(
    argv: Sequence[str],
    *,
    log_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen:
    """Start `argv` as the leader of a new process group, stdout+stderr appended to `log_path` (or discarded)."""
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    try:
        return subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        if log_path:
            out.close()


def stop_process_group(proc: subprocess.Popen | int, *, grace: float = 10.0) -> None:
    """SIGTERM the process group of `proc` (and any descendants that left it), wait `grace` s, then SIGKILL."""
    terminate([proc], [], grace=grace)


def started_since_boot(pid: int) -> float:
    """When process `pid` started, in seconds since boot (`/proc/PID/stat` starttime): with the pid, an identity that
    survives PID reuse. psutil's create_time adds the wall-clock boot time, which moves whenever the system clock is
    stepped; compared exactly, a live process would then look replaced. Raises psutil.NoSuchProcess."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError as exc:
        raise psutil.NoSuchProcess(pid) from exc
    return int(stat[stat.rindex(")") + 2:].split()[19]) / os.sysconf("SC_CLK_TCK")  # field 22, after "pid (comm) "


def session_members(sid: int) -> list[psutil.Process]:
    """Every live process in session `sid`: what a child started with `start_new_session` left behind, including
    daemons that changed their process group (Ray's raylet/GCS call setpgrp) or were re-parented to init."""
    members = []
    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) == sid and p.pid != os.getpid():
                members.append(p)
        except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
            continue
    return members


def stop_session(sid: int, *, grace: float = 10.0) -> list[int]:
    """SIGTERM every process of session `sid`, SIGKILL what is left after `grace` s; returns the pids signalled."""
    return terminate([], [sid], grace=grace)


def terminate(leaders: Sequence[subprocess.Popen | int], sessions: Sequence[int], *, grace: float) -> list[int]:
    """SIGTERM the process groups of `leaders`, their descendants and every member of `sessions`, all at once; wait
    one `grace` for all of them, then SIGKILL what is left. Stopping several children (and a trainer's Ray workers,
    which take seconds each to exit) costs one grace period, not one per child. Returns the pids signalled."""
    popens = [p for p in leaders if not isinstance(p, int)]
    procs: dict[int, psutil.Process] = {}
    pgids = set()
    for pid in [p if isinstance(p, int) else p.pid for p in leaders]:
        if (leader := _proc(pid)) is not None:
            procs[pid] = leader
            try:
                procs.update((c.pid, c) for c in leader.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
        try:
            pgids.add(os.getpgid(pid))
        except ProcessLookupError:
            pass
    for sid in sessions:
        procs.update((p.pid, p) for p in session_members(sid))
    for pgid in pgids:
        _signal_group(pgid, signal.SIGTERM)
    for p in procs.values():
        _signal_proc(p, signal.SIGTERM)
    deadline = time.monotonic() + grace
    # Our own children are waited for through Popen, which keeps their exit status (psutil would reap it).
    ours = {p.pid for p in popens}
    _, alive = psutil.wait_procs([p for pid, p in procs.items() if pid not in ours], timeout=grace)
    alive += [procs[p.pid] for p in popens if p.pid in procs and not _exited(p, deadline)]
    for pgid in pgids:
        if alive:
            _signal_group(pgid, signal.SIGKILL)
    for p in alive:
        _signal_proc(p, signal.SIGKILL)
    psutil.wait_procs([p for p in alive if p.pid not in ours], timeout=5)
    for p in popens:
        _exited(p, time.monotonic() + 5)
    return list(procs)


def _exited(proc: subprocess.Popen, deadline: float) -> bool:
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        return True
    except subprocess.TimeoutExpired:
        return False


def _proc(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_proc(p: psutil.Process, sig: int) -> None:
    try:
        p.send_signal(sig)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass
