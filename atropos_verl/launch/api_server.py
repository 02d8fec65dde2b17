# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""atroposlib's own trajectory API (`atroposlib.api.server:app`) as a child process bound to 127.0.0.1 by default.

`atropos-verl run` serves it behind the gate (`api_side.server`): the launcher writes the gate's settings from the
trainer's composed config, so the door and the trainer apply the same limits.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from atropos_verl.api_side.gate import MIB, GateSettings
from atropos_verl.api_side.server import TOKEN_ENV
from atropos_verl.group_rules import vocab_size_of
from atropos_verl.launch.processes import free_port, start_process, stop_process_group, wait_http_ok
from atropos_verl.server_key import write_private

if TYPE_CHECKING:
    from atropos_verl.launch.plan import RunPlan


def gated_api(plan: RunPlan, model_path: str) -> tuple[list[str], dict[str, str]]:
    """argv and extra environment of the run's API process; writes `<run_dir>/api_gate.json` (owner-only)."""
    atropos = plan.verl.atropos
    settings = GateSettings(
        max_prompt_length=plan.max_prompt_length,
        max_response_length=plan.max_response_length,
        batch_size=int(plan.verl.data.train_batch_size) * plan.group_size,
        quarantine_file=str(atropos.quarantine_file),
        door_file=str(atropos.door_file),
        limits={**dict(atropos.limits), "vocab_size": vocab_size_of(model_path)},
        max_body_bytes=int(plan.config.api.max_body_mb * MIB),
        max_decompressed_bytes=int(plan.config.api.max_decompressed_mb * MIB),
    )
    path = plan.run_dir / "api_gate.json"
    write_private(path, json.dumps(settings.__dict__, indent=1))
    argv = [sys.executable, "-m", "atropos_verl.api_side.server", "--host", plan.api_host, "--port",
            str(plan.api_port), "--settings", str(path)]
    return argv, {TOKEN_ENV: secrets.token_urlsafe(24)}


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
        try:
            self.wait_ready(ready_timeout)
        except BaseException:  # not ready, or interrupted: `with` never reaches __exit__, so stop it here
            self.stop()
            raise
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
