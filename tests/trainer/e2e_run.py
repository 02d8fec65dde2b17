# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""One real training run for the e2e tests: Atropos API + `python -m atropos_verl.trainer.main` + a real env.

Processes are started as their own process groups and stopped by PID (`atropos_verl.launch.processes`); the trainer
owns and shuts down its Ray cluster.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from atropos_verl.launch.api_server import AtroposAPIProcess
from atropos_verl.launch.processes import session_members, start_process, stop_process_group
from atropos_verl.shm import ShmTracker

ENV_FILE = Path(__file__).with_name("e2e_env.py")
GROUP_SIZE = 4

# A group whose masks do not line up with its tokens: the trainer must quarantine it, never train on it.
MALFORMED_GROUP = {
    "tokens": [[5, 6, 7, 8], [5, 6, 7, 9], [5, 6, 7, 10], [5, 6, 7, 11]],
    "masks": [[-100, 6, 7], [-100, 6, 7, 9], [-100, 6, 7, 10], [-100, 6, 7, 11]],
    "scores": [0.0, 1.0, 0.0, 1.0],
}


def trainer_overrides(model_dir: Path, work: Path, api_url: str, *, steps: int) -> list[str]:
    from tests.e2e.cpu_harness import run_overrides

    keep = [o for o in run_overrides(model_dir) if not o.startswith(("trainer.total_training_steps", "data.max_"))]
    return keep + [
        "data.max_prompt_length=16",
        "data.max_response_length=16",
        f"trainer.total_training_steps={steps}",
        "trainer.save_freq=1",
        "trainer.project_name=e2e",
        "trainer.experiment_name=trainer",
        f"trainer.default_local_dir={work / 'ckpt'}",
        f"atropos.api_url={api_url}",
        f"atropos.run_dir={work / 'run'}",
        "atropos.poll_timeout=300",
        "atropos.drain_timeout=60",
        "atropos.sync_timeout=180",
    ]


@dataclass
class TrainerRun:
    """Artifacts of one run: metrics per step, quarantine records, env records and the trainer's exit code."""

    work: Path
    returncode: int | None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    env_records: list[dict[str, Any]] = field(default_factory=list)
    api_status: dict[str, Any] = field(default_factory=dict)
    ray_processes: set[str] = field(default_factory=set)  # titles of the trainer's Ray workers seen ("ray::...")

    def log(self, name: str = "trainer.log") -> str:
        path = self.work / name
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_trainer(
    model_dir: Path,
    work: Path,
    *,
    steps: int,
    api: AtroposAPIProcess,
    post_malformed: bool = False,
    post_first: list[dict[str, Any]] = (),
    extra_overrides: list[str] = (),
    env_args: list[str] = (),
    timeout: float = 600.0,
) -> TrainerRun:
    """Run the trainer to `steps` with one env."""
    work.mkdir(parents=True, exist_ok=True)
    run_dir = work / "run"
    endpoints_file = run_dir / "endpoints.json"
    endpoints_file.unlink(missing_ok=True)
    argv = [
        sys.executable,
        "-m",
        "atropos_verl.trainer.main",
        *trainer_overrides(model_dir, work, api.url, steps=steps),
        *extra_overrides,
    ]
    # A SIGKILLed trainer cannot remove vLLM's shared-memory segments; the harness removes the ones its run used.
    shm = ShmTracker().snapshot()
    trainer = start_process(argv, log_path=work / "trainer.log", cwd=work)
    env_proc = None
    last_observed = 0.0
    ray_processes: set[str] = set()
    deadline = time.monotonic() + timeout
    try:
        while not endpoints_file.exists():
            if trainer.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"trainer never published endpoints:\n{(work / 'trainer.log').read_text()[-4000:]}")
            time.sleep(0.5)
        endpoints = json.loads(endpoints_file.read_text())
        for group in [MALFORMED_GROUP] * post_malformed + list(post_first):
            httpx.post(f"{api.url}/scored_data", json=group, timeout=10).raise_for_status()
        env_argv = [
            sys.executable, "-m", "atropos_verl.env_side.runner", str(ENV_FILE), "serve",
            "--env.rollout_server_url", api.url,
            "--env.group_size", str(GROUP_SIZE),
            "--env.tokenizer_name", endpoints["tokenizer_path"],
            "--env.use_wandb", "false",
            "--env.record_path", str(work / "env_records.jsonl"),
            "--openai.base_url", endpoints["base_urls"][0],
            "--openai.model_name", endpoints["served_model_name"],
            "--openai.tokenizer_name", endpoints["tokenizer_path"],
            "--openai.server_type", "vllm",
            "--openai.api_key", "x",
            *env_args,
        ]  # fmt: skip
        env_proc = start_process(env_argv, log_path=work / "env.log")
        while trainer.poll() is None:
            if time.monotonic() - last_observed > 2.0:
                members = session_members(trainer.pid)
                shm.observe(p.pid for p in members)
                ray_processes.update(_ray_titles(members))
                last_observed = time.monotonic()
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"trainer still running after {timeout:.0f}s:\n{(work / 'trainer.log').read_text()[-4000:]}"
                )
            time.sleep(0.2)
        status = httpx.get(f"{api.url}/status", timeout=10).json()
    finally:
        if env_proc is not None:
            stop_process_group(env_proc)
        if trainer.poll() is None:
            stop_process_group(trainer)
        shm.cleanup()
    metrics = []
    for path in sorted(run_dir.glob("metrics*.jsonl")):
        metrics += _jsonl(path)
    return TrainerRun(
        work=work,
        returncode=trainer.returncode,
        metrics=metrics,
        quarantine=_jsonl(run_dir / "quarantine.jsonl"),
        env_records=_jsonl(work / "env_records.jsonl"),
        api_status=status,
        ray_processes=ray_processes,
    )


def _ray_titles(members: list[Any]) -> set[str]:
    """Ray names each worker process after its actor class (`ray::WorkerDict`, `ray::WorkerDict.update_actor`)."""
    titles = set()
    for p in members:
        try:
            argv = p.cmdline()
        except Exception:  # gone meanwhile
            continue
        if argv and argv[0].startswith("ray::"):
            titles.add(argv[0].split()[0].split(".")[0])
    return titles
