# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Helpers for the platform unit tests."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def run_python(code: str, env: dict[str, str] | None = None, timeout: float = 180) -> str:
    """Run `code` in a fresh interpreter (patches are process-global); return stdout, fail with stderr."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("VERL_PLATFORM", "ATROPOS_VERL_CPU_PLATFORM")}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        pytest.fail(f"subprocess failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def plugin_active():
    """Import verl (which loads the plugin through its entry point) and require the CPU platform to be active."""
    import verl  # noqa: F401

    import atropos_verl.platform as plugin

    if not plugin.is_active():
        pytest.skip("host has an accelerator: the CPU platform is inert here by design")
    return plugin
