# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Publish where verl's rollout servers listen, for the environments to point at.

verl starts one HTTP server per rollout replica on the node IP and a random port, known only after `init_workers()`
(`verl/workers/rollout/utils.py` run_uvicorn with port 0), so the trainer writes them to `endpoints.json` in the run
dir. The file is written atomically (temp file + rename): a launcher polling for it never reads half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Endpoints:
    """Everything an environment needs to generate against the trainer's servers."""

    addresses: list[str]
    backend: str
    served_model_name: str
    tokenizer_path: str
    base_urls: list[str] = field(default_factory=list)
    step: int = 0
    time: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if not self.base_urls:
            self.base_urls = [f"http://{addr}/v1" for addr in self.addresses]


def write_atomic_json(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write JSON so readers see either the old file or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def publish_endpoints(path: str | Path, endpoints: Endpoints) -> Path:
    return write_atomic_json(path, asdict(endpoints))


def read_endpoints(path: str | Path) -> Endpoints:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return Endpoints(**data)
