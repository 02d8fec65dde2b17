# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Resume a trainer that died mid-run from its latest checkpoint, instead of ending the run.

A resumed trainer needs a fresh Atropos API (atroposlib's `/register` is one-shot per API process, so a second
registration would not move the API to the checkpoint's step) and fresh environments (theirs point at the dead
trainer's inference servers, and the groups they queued came from the old policy anyway). The run is resumed from
the checkpoint verl restores by itself (`trainer.resume_mode=auto`), with the same argv.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from atropos_verl.launch.env_configs import write_env_configs
from atropos_verl.launch.supervisor import Child, Supervisor

logger = logging.getLogger(__name__)

RESUMES_FILE = "resumes.json"


@dataclass(frozen=True)
class ResumeDecision:
    resume: bool
    step: int | None  # the checkpoint's step
    why: str  # why not (empty when resuming)


def checkpoint_step(run_dir: Path) -> int | None:
    """The step of verl's latest checkpoint under `run_dir/checkpoints` (plan.py's trainer.default_local_dir)."""
    try:
        return int((run_dir / "checkpoints" / "latest_checkpointed_iteration.txt").read_text().strip())
    except (OSError, ValueError):
        return None


def decide_resume(*, exit_code: int | None, stopping: bool, run_dir: Path, resumes_done: int, limit: int,
                  save_freq: int | None) -> ResumeDecision:
    """Whether a trainer that exited with `exit_code` is resumed; `why` is appended to the run's reason line."""
    if exit_code == 0:
        return ResumeDecision(False, None, "trainer finished")
    if stopping:
        return ResumeDecision(False, None, "the launcher is stopping")
    if limit <= 0:
        return ResumeDecision(False, None, "no resume: supervision.trainer_restarts=0")
    step = checkpoint_step(run_dir)
    if step is None or step <= 0:
        hint = f" (trainer.save_freq={save_freq})" if save_freq is not None and save_freq <= 0 else ""
        return ResumeDecision(False, None, f"no resume: no checkpoint to resume from{hint}")
    if resumes_done >= limit:
        return ResumeDecision(False, step, f"no resume: out of trainer restarts ({resumes_done} of {limit} used)")
    return ResumeDecision(True, step, "")


def record_resume(run_dir: Path, entry: dict) -> list[dict]:
    path = run_dir / RESUMES_FILE
    entries = json.loads(path.read_text()) if path.is_file() else []
    entries.append(entry)
    path.write_text(json.dumps(entries, indent=1))
    return entries


def resume_trainer(plan, sup: Supervisor, trainer: Child, step: int, *, backoff: float,
                   queued: Callable[[], int | None],
                   stopped: Callable[[], bool], wait_api: Callable[[Child], None],
                   wait_endpoints: Callable[[], object]) -> object | None:
    """Stop envs, restart the API and the trainer, wait for the new endpoints, restart the envs on them.

    `queued` reads the API's queue size (its /status): the groups dropped with the restarted API.
    Returns the new endpoints, or None when the launcher was asked to stop during the back-off."""
    exit_code = trainer.exit_code
    died = time.time()
    envs = [c for c in sup.children if c.role == "env"]
    for env in envs:
        sup.stop(env)
    sup.stop(trainer)  # what the dead trainer left in its session (Ray, vLLM)
    api = next(c for c in sup.children if c.role == "api")
    dropped = queued()
    logger.warning("trainer exited with code %s; resuming it from checkpoint step %d (resume %d); restarting the "
                   "API, dropping %s queued group(s) from the old policy", exit_code, step, trainer.restarts + 1,
                   "?" if dropped is None else dropped)
    delay = backoff * (2 ** trainer.restarts)
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline:
        if stopped():
            return None
        time.sleep(0.2)
    plan.endpoints_file.unlink(missing_ok=True)  # the dead servers' addresses must never be used
    sup.restart(api)
    wait_api(api)
    sup.restart(trainer)
    entries = record_resume(plan.run_dir, {"time": died, "from_step": step, "exit_code": exit_code,
                                           "dropped_queued_groups": dropped, "trainer_pid": trainer.pid})
    logger.warning("resumed the trainer from step %d (resume %d; the dead trainer's exit code %s), pid %s", step,
                   len(entries), exit_code, trainer.pid)
    endpoints = wait_endpoints()
    write_env_configs(plan, endpoints)
    for env in envs:
        sup.restart(env)
    return endpoints
