# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Decide whether this host runs verl on the CPU platform.

The plugin is installed everywhere the package is, GPU clusters included, so every patch is gated on this decision:
on a host with an accelerator nothing is changed. A CPU-only Ray actor on a GPU node must not count as a CPU host
either, hence the SMI/device-node probes that do not depend on the process's visible devices.
"""

from __future__ import annotations

import glob
import os
import shutil

PLATFORM_NAME = "cpu"
# Set to "0" to keep the plugin inert even on a CPU-only host (e.g. to debug verl's own behaviour).
ENABLE_ENV = "ATROPOS_VERL_CPU_PLATFORM"

_SMI_COMMANDS = ("nvidia-smi", "rocm-smi", "amd-smi", "npu-smi", "xpu-smi", "hl-smi")
_DEVICE_NODES = ("/dev/nvidia[0-9]*", "/dev/kfd", "/dev/davinci[0-9]*", "/dev/accel/accel[0-9]*")


def host_has_accelerator() -> bool:
    """True if torch sees an accelerator, or the host has accelerator device nodes or vendor SMI tools."""
    try:
        import torch

        accel = getattr(torch, "accelerator", None)
        if accel is not None and accel.is_available():
            return True
        if torch.cuda.is_available():
            return True
        if getattr(torch.version, "cuda", None) and os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
            # A CUDA build with devices hidden from this process: a CPU-only actor on a GPU node.
            return True
    except Exception:  # torch import problems are verl's to report, not ours
        pass
    if any(glob.glob(pattern) for pattern in _DEVICE_NODES):
        return True
    return any(shutil.which(cmd) for cmd in _SMI_COMMANDS)


def cpu_platform_requested() -> bool:
    """Whether the CPU platform (and all its patches) should be active in this process.

    `VERL_PLATFORM` wins as in verl's own detection (`verl/plugin/platform/platform_manager.py:83`); otherwise the
    platform is active exactly when the host has no accelerator.
    """
    if os.environ.get(ENABLE_ENV, "1").strip() == "0":
        return False
    forced = os.environ.get("VERL_PLATFORM", "").strip().lower()
    if forced:
        return forced == PLATFORM_NAME
    return not host_has_accelerator()
