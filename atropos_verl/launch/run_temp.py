# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""One short private temp dir per run, given to every child as TMPDIR, and the removal of what a run leaves behind.

Short because Ray's unix socket paths must stay under 107 characters; private so that vLLM's `vllm_dist_*`, torch's
temp files and the Ray cluster's dir all go with one `rmtree` on every stop path (the watchdog's included).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

#: Logger directories a run may create and leave empty (wandb creates `wandb/` before it knows it is offline).
LOGGER_DIRS = ("wandb",)


def make_run_temp() -> Path:
    """A fresh `/tmp/av-XXXXXXXX` (the system /tmp even when TMPDIR is long: socket paths)."""
    root = "/tmp" if Path("/tmp").is_dir() else None
    return Path(tempfile.mkdtemp(prefix="av-", dir=root))


def new_logger_dirs(*parents: Path) -> list[Path]:
    """The logger dirs that do not exist yet under `parents`: the ones this run may create and must not leave empty."""
    return [p / name for p in parents for name in LOGGER_DIRS if not (p / name).exists()]


def remove_run_files(temp_dir: Path | None, endpoints_file: Path | None, empty_dirs: Iterable[Path]) -> None:
    """Remove the run's temp dir, its endpoints file and each of `empty_dirs` that is (still) empty."""
    if temp_dir is not None:
        shutil.rmtree(temp_dir, ignore_errors=True)
    if endpoints_file is not None:
        endpoints_file.unlink(missing_ok=True)
    for d in empty_dirs:
        try:
            d.rmdir()  # only succeeds when empty
        except OSError:
            pass
