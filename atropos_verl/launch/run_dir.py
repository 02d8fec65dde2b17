# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The run dir belongs to one launcher at a time: checked usable before anything starts, then locked.

Two launchers with the same `run_name` would share logs, overwrite launch.json/processes.json and delete each other's
endpoints.json; the second must refuse before it touches anything.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from atropos_verl.errors import ConfigError

LOCK_NAME = ".lock"


def check_output_dir(output_dir: Path) -> None:
    """Fail with one line naming `output_dir` when it cannot hold run dirs (not a directory, not writable)."""
    path = output_dir
    while not path.exists():  # the nearest existing ancestor must let us create the rest
        if path.parent == path:
            break
        path = path.parent
    if path.exists() and not path.is_dir():
        what = "output_dir" if path == output_dir else f"output_dir's parent {path}"
        raise ConfigError(f"{output_dir}: {what} is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        what = "output_dir" if path == output_dir else f"output_dir's parent {path}"
        raise ConfigError(f"{output_dir}: {what} is not writable")


class RunDirLocked(ConfigError):
    """Another live launcher holds the run dir."""


class RunDirLock:
    """An exclusive `flock` on `<run_dir>/.lock` holding the owner's pid; released when the process exits."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> RunDirLock:
        """Take the lock or raise RunDirLocked naming the holder; changes nothing in the run dir when refused."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunDirLocked(f"{self.path.parent}: already in use by launcher pid {holder}; "
                               f"stop it or pick another run_name") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.set_inheritable(fd, False)
        self.fd = fd
        return self

    def refuse_if_held(self) -> None:
        """Raise RunDirLocked when a live launcher holds the lock; creates nothing (a probe before the slow checks)."""
        if not self.path.is_file():
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            raise RunDirLocked(f"{self.path.parent}: already in use by launcher pid {holder}; "
                               f"stop it or pick another run_name") from None
        finally:
            os.close(fd)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # the file stays: unlinking it would let a third launcher lock a different inode
            self.fd = None
