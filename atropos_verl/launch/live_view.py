# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""What a person watching `atropos-verl run` sees: a rich live table on a terminal, plain log lines otherwise (CI)."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from atropos_verl.launch.health import HealthMonitor, api_client_problem, door_phrase, env_health
from atropos_verl.launch.supervisor import Supervisor


def _show(value: object) -> str:
    return "-" if value is None else str(value)


def policy_phrase(s: Any) -> str:
    """` | policy v3 (servers) lag 0.9/2`: the oldest version the servers serve and the last batch's lag mean/max."""
    parts = []
    if s.server_versions:
        versions = sorted(set(s.server_versions.values()))
        parts.append("policy v" + "/".join(map(str, versions)))
    if s.lag:
        parts.append(f"lag {s.lag.get('mean', float('nan')):.1f}/{s.lag.get('max', float('nan')):.0f}")
    return (" | " + " ".join(parts)) if parts else ""


class LiveView:
    def __init__(self, sup: Supervisor, health: HealthMonitor, plan: Any, *, live: bool | None = None):
        self.sup, self.health, self.plan = sup, health, plan
        self.live = sys.stdout.isatty() if live is None else live
        self.console = Console()
        self._live: Live | None = None
        self._started = time.monotonic()
        self._last_line = ""
        self._last_snapshot_at = 0.0
        self._note = "starting"

    def start(self) -> None:
        if self.live:
            self._live = Live(self.render(), console=self.console, refresh_per_second=2, transient=False)
            self._live.start()
        self._print(f"run {self.plan.config.run_name}: api {self.plan.api_url}, backend {self.plan.backend}, "
                    f"{len(self.plan.envs)} environment process(es), logs in {self.plan.run_dir / 'logs'}")

    def note(self, text: str) -> None:
        self._note = text
        self.refresh()

    def status_line(self) -> str:
        s = self.health.snapshot
        procs = ", ".join(
            f"{c.name}={c.state}" + (f"({c.restarts}r)" if c.restarts else "") for c in self.sup.children
        )
        score = "-" if s.mean_score is None else f"{s.mean_score:.3f}"
        problem = "; ".join(filter(None, (api_client_problem(s.api_client), door_phrase(s.door))))
        return (
            f"[{time.monotonic() - self._started:6.0f}s] step {_show(s.trainer_step)}"
            f" | api step {_show(s.api_step)} queue {_show(s.queue_size)} | mean score {score}{policy_phrase(s)}"
            f" | {procs}"
            + (f" | {problem}" if problem else "")
        )

    def render(self) -> Group:
        s = self.health.snapshot
        table = Table(title=f"atropos-verl run: {self.plan.config.run_name} ({self._note})", expand=False)
        for col in ("process", "pid", "state", "restarts", "health"):
            table.add_column(col)
        for c in self.sup.children:
            if c.role == "api":
                ok = "ok" if s.api_ok else "-"
            elif c.role == "env":
                ok = env_health(s.envs.get(c.name, {}))
            else:
                up = sum(s.servers.values())
                ok = f"{up}/{len(s.servers)} servers healthy" if s.servers else "-"
            table.add_row(c.name, str(c.pid or "-"), c.state, str(c.restarts), ok)
        stats = Text(
            f"trainer step {_show(s.trainer_step)}   API step {_show(s.api_step)}   "
            f"queue {_show(s.queue_size)} group(s)   "
            f"last mean score {'-' if s.mean_score is None else f'{s.mean_score:.3f}'}"
            + policy_phrase(s)
        )
        if problem := api_client_problem(s.api_client):
            stats.append(f"\n{problem}", style="bold red")
        if door := door_phrase(s.door):
            stats.append(f"\n{door}", style="yellow")
        return Group(table, stats)

    def refresh(self) -> None:
        if self._live is not None:
            self._live.update(self.render())
            return
        s = self.health.snapshot
        if s.checked_at != self._last_snapshot_at:
            self._last_snapshot_at = s.checked_at
            line = self.status_line()
            if line.split("] ", 1)[1] != self._last_line:
                self._last_line = line.split("] ", 1)[1]
                self._print(line)

    def stop(self) -> None:
        if self._live is not None:
            self._live.update(self.render())
            self._live.stop()
            self._live = None

    def _print(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(text)
        else:
            print(text, flush=True)

    def summary(self, result: Any) -> None:
        s = self.health.snapshot
        lines = [
            f"run {self.plan.config.run_name} ended: {result.reason} (exit code {result.exit_code})",
            f"  trainer step {s.trainer_step}, API step {s.api_step}, last mean score {s.mean_score}",
        ]
        if problem := api_client_problem(s.api_client):
            lines.append(f"  batch polling: {problem}")
        if door := door_phrase(s.door):
            lines.append(f"  API: {door}")
        for c in self.sup.children:
            lines.append(f"  {c.name}: {c.state}, exit code {c.exit_code}, restarts {c.restarts}, log {c.log_path}")
            if c.role == "env" and s.envs.get(c.name):
                lines.append(f"    {env_health(s.envs[c.name])}")
        lines.append(f"  run dir {result.run_dir}")
        if result.removed_shm:
            lines.append(f"  removed {len(result.removed_shm)} shared-memory segment(s) left by vLLM")
        if result.leftovers:
            lines.append("  processes still running after shutdown: " + "; ".join(result.leftovers))
        else:
            lines.append("  no process left running")
        print("\n".join(lines), flush=True)
