# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""One short private temp dir per run, given to every child as TMPDIR, and the removal of what a run leaves behind.

Short because Ray's unix socket paths must stay under 107 characters; private so that vLLM's `vllm_dist_*`, torch's
temp files and the Ray cluster's dir all go with one `rmtree` on every stop path (the watchdog's included). Compiled
kernels are the exception: torch keeps them under TMPDIR, and vLLM's CPU sampler took 7-9 s to compile on every run's
first request against about 1 s from the cache, so `link_compile_cache` points torch's directory back to where it
would be without the private dir.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

logger = logging.getLogger(__name__)

#: Logger directories a run may create and leave empty (wandb creates `wandb/` before it knows it is offline).
LOGGER_DIRS = ("wandb",)


def make_run_temp() -> Path:
    """A fresh `/tmp/av-XXXXXXXX` (the system /tmp even when TMPDIR is long: socket paths)."""
    root = "/tmp" if Path("/tmp").is_dir() else None
    return Path(tempfile.mkdtemp(prefix="av-", dir=root))


def link_compile_cache(temp_dir: Path, environ: Mapping[str, str] = os.environ) -> Path | None:
    """Link `temp_dir/torchinductor_<user>` to torch's default cache under the TMPDIR in force before the run.

    torch keeps compiled kernels, and the 150 MB precompiled header every CPU kernel includes, in
    `tempfile.gettempdir()/torchinductor_<user>` (`torch/_inductor/runtime/cache_dir_utils.py` `default_cache_dir`;
    the header's directory ignores `TORCHINDUCTOR_CACHE_DIR`, `torch/_inductor/codecache.py` `_HEADER_DIR`). Under the
    run's private TMPDIR both would be rebuilt by every run; through the link they are shared with the user's other
    torch programs, and removing the temp dir removes only the link. Returns the link's target, or None where it
    cannot be made (the run then compiles in its temp dir, as before).
    """
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): torch's own fallback
        user = f"uid_{os.getuid()}"
    name = "torchinductor_" + re.sub(r'[\\/:*?"<>|]', "_", user)
    target = Path(environ.get("TMPDIR") or tempfile.gettempdir()) / name
    try:
        target.mkdir(parents=True, exist_ok=True)
        (temp_dir / name).symlink_to(target, target_is_directory=True)
    except OSError as exc:
        logger.warning("torch's compile cache stays in the run's temp dir: %s", exc)
        return None
    return target


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
