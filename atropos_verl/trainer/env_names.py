# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Environment names for the `env_id` numbers the Atropos API stamps on groups.

The API numbers environments in registration order and forgets them when it restarts, so an id alone says little in
a metric or a quarantine record. Environments started by `atropos-verl run` write `<run dir>/envs/<name>.status.json`
(env side, `env_side/posting.py`) with the id the API gave them; this maps ids back to those process names (unique
per run, unlike an environment class's `name`, which may be None or shared). Environments the launcher did not start
keep `env<id>`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def status_records(status_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Each environment process's status record, by process name; unreadable or torn files are left out."""
    records: dict[str, dict[str, Any]] = {}
    for path in Path(status_dir).glob("*.status.json"):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict):
            records[path.name.removesuffix(".status.json")] = record
    return records


class EnvNames:
    def __init__(self, status_dir: str | Path):
        self.status_dir = Path(status_dir)
        self._names: dict[int, str] = {}

    def refresh(self) -> None:
        """Re-read the status files (a few small files, once per step); the newest registration of an id wins."""
        found: dict[int, tuple[float, str]] = {}
        for name, record in status_records(self.status_dir).items():
            try:
                env_id, when = int(record["env_id"]), float(record.get("time") or 0)
            except (ValueError, KeyError, TypeError):
                continue
            if env_id not in found or when > found[env_id][0]:
                found[env_id] = (when, name)
        self._names = {env_id: name for env_id, (_, name) in found.items()}

    def name_of(self, env_id: object) -> str:
        if env_id is None:
            return "unknown"
        try:
            return self._names.get(int(env_id), f"env{env_id}")
        except (TypeError, ValueError):
            return str(env_id)
