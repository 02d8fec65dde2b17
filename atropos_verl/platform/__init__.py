# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""verl CPU platform plugin: runs verl's own trainer, FSDP2 workers and vLLM replica on a host without accelerators.

Loaded by verl itself through the `verl.plugins` entry point (`verl/__init__.py:59-76`) in every process that imports
verl: the driver, every Ray worker and vLLM's engine/worker subprocesses (they import verl for the worker extension).
On a host with an accelerator (or with `VERL_PLATFORM` naming another platform) it registers the platform class and
changes nothing else. verl swallows plugin import errors at debug level, so this module must not raise.

Patches (each names the upstream line it works around, each has a test under tests/platform/):
  P1/P4 `engine`, P7 `logprobs`, P2 `distributed`, P3/P5 `cpu_platform`, P6/V2 `resources`, V1 `vllm_version`,
  V3 `vllm_worker_ext`; V4 `atropos_verl.vllm_idle` (a vLLM plugin); config defaults (C1-C4) in `defaults`.
"""

from __future__ import annotations

from atropos_verl.host_detect import PLATFORM_NAME, cpu_platform_requested

__all__ = ["PLATFORM_NAME", "activate", "is_active"]

_active = False


def activate() -> bool:
    """Register PlatformCPU and, on a CPU host, install every patch. Idempotent; returns whether it is active."""
    global _active
    from . import cpu_platform  # noqa: F401  (registers PlatformCPU with verl's PlatformRegistry)

    if _active or not cpu_platform_requested():
        return _active
    from . import distributed, engine, logprobs, resources, vllm_version

    vllm_version.install()
    resources.install()
    distributed.install()
    engine.install()
    logprobs.install()
    _active = True
    return True


def is_active() -> bool:
    return _active


activate()
