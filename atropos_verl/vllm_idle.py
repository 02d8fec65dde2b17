# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Shorten vLLM's busy-wait on its shared-memory message queues (V4).

Under the multiprocessing executor (vLLM-CPU's default, `vllm/platforms/cpu.py`: a stand-alone vLLM server, or verl's
servers with "mp"; the CPU platform's verl servers default to "uni", C4 in `atropos_verl.platform.defaults`) the engine
core and its worker process exchange every forward pass through `shm_broadcast.MessageQueue`. A reader keeps spinning on
the queue for `SpinCondition.busy_loop_s` = 1 s after its last read (`shm_broadcast.py`, `SpinCondition.wait`) before it
sleeps on a socket. On a GPU host those spinning cores are spare; on the CPU platform they are the cores the actor
update runs on: in hybrid mode the servers are paused right before the update, so both processes spin through most of
it. Readers here spin for `busy_loop_s()` seconds instead (`ATROPOS_VERL_VLLM_BUSY_LOOP_S`), long enough to catch the
next step of a running generation without sleeping, short enough to give the cores back to the trainer.

Installed by vLLM itself through the `vllm.general_plugins` entry point, which its engine core loads before it builds
the queues (`vllm/v1/engine/core.py`, `load_general_plugins`) and its workers load too. Kept outside
`atropos_verl.platform`: importing that package imports verl, seconds of start-up the engine core does not need.
"""

from __future__ import annotations

import functools
import os
from types import ModuleType

from atropos_verl.host_detect import cpu_platform_requested
from atropos_verl.import_hooks import when_imported

TARGET = "vllm.distributed.device_communicators.shm_broadcast"
BUSY_LOOP_ENV = "ATROPOS_VERL_VLLM_BUSY_LOOP_S"
DEFAULT_BUSY_LOOP_S = 0.01
_MARK = "__atropos_verl_busy_loop__"


def busy_loop_s() -> float:
    """The readers' spin window in seconds: the environment's value, else the default; never negative."""
    raw = os.environ.get(BUSY_LOOP_ENV, "").strip()
    if not raw:
        return DEFAULT_BUSY_LOOP_S
    try:
        return max(0.0, float(raw))
    except ValueError:
        return DEFAULT_BUSY_LOOP_S  # a plugin must not raise; the default is the measured value


def shorten_spin(module: ModuleType) -> None:
    """Wrap `SpinCondition.__init__` so every reader spins at most `busy_loop_s()` seconds. Idempotent."""
    cls = module.SpinCondition
    original = cls.__init__
    if hasattr(original, _MARK):
        return
    window = busy_loop_s()

    @functools.wraps(original)
    def __init__(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        if self.is_reader:
            self.busy_loop_s = min(self.busy_loop_s, window)

    setattr(__init__, _MARK, window)
    cls.__init__ = __init__


def install() -> None:
    when_imported(TARGET, shorten_spin)


def vllm_plugin() -> None:
    """vLLM general plugin (every vLLM process): shorten the spin when the CPU platform is requested. Never raises."""
    try:
        if cpu_platform_requested():
            install()
    except Exception:  # a plugin failure must not stop vLLM; the spin only costs speed
        pass
