# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Owns the run's child processes: starts them in order, restarts environments with backoff, stops them all at once.

Every child is started as the leader of its own session, so stopping it means signalling that session: the trainer's
Ray daemons and vLLM engine processes go with it even when they changed process group or were re-parented. Nothing is
ever stopped by name.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from atropos_verl.launch.log_lines import last_error_line
from atropos_verl.launch.processes import session_members, start_process, stop_session, terminate

logger = logging.getLogger(__name__)


@dataclass
class Child:
    name: str
    role: str  # "api", "trainer" or "env"
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    max_restarts: int = 0
    proc: subprocess.Popen | None = None
    state: str = "pending"
    restarts: int = 0
    exit_code: int | None = None
    next_start: float | None = None
    sessions: list[int] = field(default_factory=list)
    last_error: str | None = None  # the error line of its log when it last exited non-zero
    cwd: Path | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as fh:
            fh.write(f"\n=== start {self.name} (attempt {self.restarts + 1}): {' '.join(self.argv)}\n".encode())
        self.proc = start_process(self.argv, log_path=self.log_path, env=self.env, cwd=self.cwd)
        self.sessions.append(self.proc.pid)
        self.state = "running"
        self.exit_code = None
        self.next_start = None

    def poll(self) -> int | None:
        return self.proc.poll() if self.proc else None


class RunFailed(RuntimeError):
    """A child died for good (restart limit reached, or a child that is never restarted)."""


class Supervisor:
    def __init__(self, *, restart_backoff: float = 2.0, stop_grace: float = 10.0, record: Path | None = None):
        self.children: list[Child] = []
        self.record = record
        self.restart_backoff = restart_backoff
        self.stop_grace = stop_grace

    def start(self, child: Child) -> Child:
        self.children.append(child)
        self._start(child)
        logger.info("started %s (pid %s), log %s", child.name, child.pid, child.log_path)
        return child

    def _start(self, child: Child) -> None:
        child.start()
        if self.record is not None:
            # Every process group we ever led, so anyone (tests, a person) can verify nothing outlives the run.
            sessions = [{"name": c.name, "role": c.role, "sessions": c.sessions} for c in self.children]
            self.record.write_text(json.dumps(sessions, indent=1))

    def get(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)

    def check(self) -> Child | None:
        """Reap exits, schedule and perform restarts. Returns the trainer once it has exited; raises RunFailed."""
        now = time.monotonic()
        for child in self.children:
            if child.state == "running" and (code := child.poll()) is not None:
                child.exit_code = code
                if child.role == "trainer":
                    child.state = "exited"
                    return child
                # What the process left in its session (engine subprocesses, say) goes with it.
                stop_session(child.pid, grace=self.stop_grace)
                if code == 0 and child.role == "env":
                    # Environments exit 0 once the run's total steps are queued: done, not dead.
                    child.state = "finished"
                    logger.info("%s finished", child.name)
                    continue
                child.last_error = last_error_line(child.log_path)
                if child.restarts >= child.max_restarts:
                    child.state = "failed"
                    why = f": {child.last_error}" if child.last_error else ""
                    raise RunFailed(
                        f"{child.name} exited with code {code} after {child.restarts} restart(s) "
                        f"(limit {child.max_restarts}){why}; see {child.log_path}"
                    )
                delay = self.restart_backoff * (2**child.restarts)
                child.state = "restarting"
                child.next_start = now + delay
                logger.warning("%s exited with code %s (%s); restarting in %.1fs", child.name, code,
                               child.last_error or "no error line in its log", delay)
            elif child.state == "restarting" and child.next_start is not None and now >= child.next_start:
                child.restarts += 1
                self._start(child)
                logger.info("restarted %s (pid %s, restart %d)", child.name, child.pid, child.restarts)
        return None

    def restart(self, child: Child) -> None:
        """Stop `child` now and start it again (used after the API restarted and forgot the environments)."""
        self.stop(child)
        child.restarts += 1
        self._start(child)

    def member_pids(self) -> list[int]:
        """Every live process of every session our children ever led (for shared-memory bookkeeping)."""
        return [p.pid for child in self.children for sid in child.sessions for p in session_members(sid)]

    def stop_all(self) -> list[str]:
        """Stop every child at once (one grace period for the whole tree, so Ctrl-C takes seconds, not a grace per
        child); returns descriptions of anything that survived (should be none)."""
        self._stop(self.children)
        leftovers = []
        for child in self.children:
            for sid in child.sessions:
                leftovers += [f"{child.name}: pid {p.pid} ({p.name()})" for p in session_members(sid)]
        return leftovers

    def stop(self, child: Child) -> None:
        """Stop `child` and every session it ever led; it stays stopped until `restart`."""
        self._stop([child])

    def _stop(self, children: list[Child]) -> None:
        began = time.monotonic()
        leaders = [c.proc for c in children if c.proc is not None and c.proc.poll() is None]
        sessions = [sid for c in children for sid in c.sessions if sid != os.getpid()]
        terminate(leaders, sessions, grace=self.stop_grace)
        for child in children:
            if child.state in ("running", "restarting", "pending"):
                child.state = "stopped"
            if child.proc is not None and child.exit_code is None:
                child.exit_code = child.proc.poll()
        logger.info("stopped %s in %.1fs", ", ".join(c.name for c in children), time.monotonic() - began)
