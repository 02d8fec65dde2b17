# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Health of a running stack: the API's /status, each verl server's /health, each environment's registration, and the
trainer's latest metrics line. Read-only: acting on what it finds is the supervisor's job."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from atropos_verl.api_side.door_stats import read_door_stats
from atropos_verl.launch.env_configs import env_status_file
from atropos_verl.launch.supervisor import Supervisor
from atropos_verl.trainer.atropos_client import API_CLIENT_FILE
from atropos_verl.trainer.endpoints import Endpoints
from atropos_verl.trainer.env_drops import without_group_phrase
from atropos_verl.wire import POLICY_VERSION_HEADER


@dataclass
class Snapshot:
    api_ok: bool = False
    api_step: int | None = None
    queue_size: int | None = None
    servers: dict[str, bool] = field(default_factory=dict)
    envs: dict[str, dict[str, Any]] = field(default_factory=dict)  # each env process's status record
    trainer_step: int | None = None
    mean_score: float | None = None
    server_versions: dict[str, int] = field(default_factory=dict)  # policy version each server stamps on answers
    lag: dict[str, float] = field(default_factory=dict)  # the last step's atropos/lag/{mean,max}
    checked_at: float = 0.0
    api_client: dict[str, Any] = field(default_factory=dict)  # the trainer's PollHealth: 5xx from /batch, stall
    door: dict[str, Any] = field(default_factory=dict)  # the API door's counts (`api_side.door_stats`)


def api_client_problem(record: dict[str, Any]) -> str | None:
    """One phrase for the live view when the trainer's batch polling is in trouble, else None."""
    parts = []
    if record.get("stalled"):
        parts.append(f"STALLED: {record.get('queue_size')} group(s) queued, no batch forms "
                     f"({record.get('waiting_s', 0):.0f}s)")
    if record.get("server_errors"):
        parts.append(f"/batch 5xx x{record['server_errors']}: {str(record.get('last_server_error'))[:120]}")
    return "; ".join(parts) or None


def door_phrase(record: dict[str, Any]) -> str | None:
    """One phrase for the live view when the API's door has rejected groups, else None."""
    if not record.get("rejected"):
        return None
    reasons = sorted((record.get("by_reason") or {}).items(), key=lambda item: -item[1])
    phrase = f"door rejected {record['rejected']}: " + ", ".join(f"{r} x{n}" for r, n in reasons[:3])
    if record.get("streak", 0) > 1:
        phrase += f" (the last {record['streak']} in a row)"
    return phrase


def read_env_status(path: Path, pid: int | None) -> dict[str, Any] | None:
    """The env runner's status record (`env_side/posting.py`), if it belongs to the process now running."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if data.get("pid") == pid else None


def last_metrics(run_dir: Path) -> dict[str, Any] | None:
    """The newest line of the trainer's metrics files (metrics.jsonl, metrics.resumed-K.jsonl)."""
    files = sorted(run_dir.glob("metrics*.jsonl"), key=lambda p: p.stat().st_mtime)
    for path in reversed(files):
        lines = path.read_text(encoding="utf-8").strip().splitlines()
        for line in reversed(lines):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def mean_score(metrics: dict[str, Any]) -> float | None:
    data = metrics.get("data", metrics)
    if "critic/score/mean" in data:
        return float(data["critic/score/mean"])
    env_means = [float(v) for k, v in data.items() if k.startswith("atropos/env/") and k.endswith("/score_mean")]
    return sum(env_means) / len(env_means) if env_means else None


#: A registered environment that has posted nothing for this long is reported as silent.
SILENT_AFTER_S = 300.0


def env_health(record: dict[str, Any], now: float | None = None, silent_after: float = SILENT_AFTER_S) -> str:
    """One phrase for an environment process: waiting, registered, posting, silent (with its counters)."""
    if not record:
        return "starting"
    if record.get("env_id") is None:
        return "waiting to register"
    now = time.time() if now is None else now
    posted = int(record.get("groups_posted") or 0)
    last = record.get("last_post_time")
    failures = int(record.get("send_failures") or 0) + int(record.get("refused_by_api") or 0)
    since = float(last if last is not None else record.get("time") or now)
    state = "posting" if posted else "registered"
    if now - since > silent_after:
        state = "silent"
    parts = [state, f"{posted} groups"]
    if last is not None:
        parts.append(f"last {now - float(last):.0f}s ago")
    if failures:
        parts.append(f"{failures} failed posts")
    if record.get("errors_logged"):
        parts.append(f"{record['errors_logged']} errors")
    if record.get("skipped_too_long"):
        parts.append(f"{record['skipped_too_long']} groups dropped by atroposlib as too long")
    if phrase := without_group_phrase(record):
        parts.append(phrase)
    return ", ".join(parts)



class HealthMonitor:
    def __init__(self, plan: Any):
        self.plan = plan
        self.endpoints: Endpoints | None = None
        self.snapshot = Snapshot()
        self._http = httpx.Client(timeout=3.0)

    def wait_api(self, timeout: float, alive: Callable[[], bool]) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive():
                raise TimeoutError(f"the Atropos API process exited during start-up; see {self.plan.run_dir}/logs")
            if self.api_status() is not None:
                return
            time.sleep(0.2)
        raise TimeoutError(f"the Atropos API at {self.plan.api_url} did not answer /status within {timeout:.0f}s")

    def api_status(self) -> dict[str, Any] | None:
        try:
            resp = self._http.get(f"{self.plan.api_url}/status")
            return resp.json() if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    def first_step_seen(self) -> bool:
        """Whether the trainer has logged its first step (cheap: a file size, checked every loop turn)."""
        path = self.plan.run_dir / "metrics.jsonl"
        return path.is_file() and path.stat().st_size > 0

    def check(self, sup: Supervisor) -> Snapshot:
        snap = Snapshot(checked_at=time.time())
        status = self.api_status()
        snap.api_ok = status is not None
        if status:
            snap.api_step, snap.queue_size = status.get("current_step"), status.get("queue_size")
        for addr in self.endpoints.addresses if self.endpoints else []:
            try:
                answer = self._http.get(f"http://{addr}/health")
                snap.servers[addr] = answer.status_code == 200
                if (version := answer.headers.get(POLICY_VERSION_HEADER)) is not None and version.isdigit():
                    snap.server_versions[addr] = int(version)
            except httpx.HTTPError:
                snap.servers[addr] = False
        for child in sup.children:
            if child.role == "env":
                snap.envs[child.name] = read_env_status(env_status_file(self.plan.run_dir, child.name), child.pid) or {}
        try:
            snap.api_client = json.loads((self.plan.run_dir / API_CLIENT_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            snap.api_client = {}
        snap.door = read_door_stats(self.plan.verl.atropos.door_file) or {}
        metrics = last_metrics(self.plan.run_dir)
        if metrics:
            snap.trainer_step = metrics.get("step")
            snap.mean_score = mean_score(metrics)
            data = metrics.get("data", metrics)
            snap.lag = {k: float(data[f"atropos/lag/{k}"]) for k in ("mean", "max") if f"atropos/lag/{k}" in data}
        self.snapshot = snap
        return snap
