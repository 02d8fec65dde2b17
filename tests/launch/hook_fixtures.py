# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""A `prepare_model` hook that is not the demo's: copies the built model and counts its calls."""

from __future__ import annotations

import shutil
from pathlib import Path

CALLS: list[dict] = []


def copy_model(built_dir: Path, out_dir: Path, *, tag: str) -> dict:
    shutil.copytree(built_dir, out_dir)
    (out_dir / "TAG").write_text(tag)
    CALLS.append({"built": str(built_dir), "tag": tag})
    return {"tag": tag}
