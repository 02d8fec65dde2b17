# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""atroposlib's own trajectory API (`atroposlib.api.server:app`) as a child process bound to 127.0.0.1 by default."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from atropos_verl.launch.processes import free_port, start_process, stop_process_group, wait_http_ok


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
        wait_http_ok(f"{self.url}/status", proc=self.proc, timeout=timeout, what="Atropos API", log_path=self.log_path)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc)
            self.proc = None

    def __enter__(self) -> AtroposAPIProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
