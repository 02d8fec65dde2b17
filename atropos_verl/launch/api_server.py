# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""atroposlib's own trajectory API (`atroposlib.api.server:app`) as a child process bound to 127.0.0.1 by default."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from atropos_verl.launch.processes import free_port, start_process, stop_process_group


class AtroposAPIProcess:
    """Start, health-check and stop the Atropos API through atroposlib's `run_api` entry point."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, log_path: Path | None = None):
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, ready_timeout: float = 60.0) -> AtroposAPIProcess:
        argv = [sys.executable, "-m", "atroposlib.cli.run_api", "--host", self.host, "--port", str(self.port)]
        self.proc = start_process(argv, log_path=self.log_path)
        self.wait_ready(ready_timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"Atropos API exited with code {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/status", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"Atropos API at {self.url} not ready after {timeout:.0f}s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc)
            self.proc = None

    def __enter__(self) -> AtroposAPIProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
