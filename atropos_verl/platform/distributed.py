# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Plain gloo process groups on CPU (P2).

`verl/utils/distributed.py:63` and `:89` build the backend string `f"cpu:gloo,{device}:{backend}"`, which on the CPU
platform is "cpu:gloo,cpu:gloo"; torch rejects it ("Duplicate device type cpu in backend string"). The wrappers pass
`backend="gloo"` instead. They must be in place before `verl/workers/engine_workers.py:38` and
`verl/checkpoint_engine/base.py:25` import the functions by name, which the post-import hook guarantees; modules that
already bound the originals are rebound too.
"""

from __future__ import annotations

import functools
import os
import sys
from datetime import timedelta
from types import ModuleType

from atropos_verl.import_hooks import when_imported

TARGET = "verl.utils.distributed"
_MARK = "__atropos_verl_cpu__"
_BY_NAME_IMPORTERS = ("verl.workers.engine_workers", "verl.checkpoint_engine.base", "verl.workers.engine.base")


def _gloo_global_group_ray(original):
    @functools.wraps(original)
    def initialize_global_process_group_ray(timeout_second=None, backend=None):
        return original(timeout_second=timeout_second, backend=backend or "gloo")

    setattr(initialize_global_process_group_ray, _MARK, original)
    return initialize_global_process_group_ray


def _gloo_global_group(original):
    @functools.wraps(original)
    def initialize_global_process_group(timeout_second=36000):
        import torch.distributed

        torch.distributed.init_process_group(
            backend="gloo",
            timeout=timedelta(seconds=timeout_second),
            init_method=os.environ.get("DIST_INIT_METHOD", None),
        )
        return int(os.environ["LOCAL_RANK"]), int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])

    setattr(initialize_global_process_group, _MARK, original)
    return initialize_global_process_group


def _patch(module: ModuleType) -> None:
    for name, wrap in (
        ("initialize_global_process_group_ray", _gloo_global_group_ray),
        ("initialize_global_process_group", _gloo_global_group),
    ):
        original = getattr(module, name)
        if hasattr(original, _MARK):
            continue
        patched = wrap(original)
        setattr(module, name, patched)
        for importer in _BY_NAME_IMPORTERS:
            other = sys.modules.get(importer)
            if other is not None and getattr(other, name, None) is original:
                setattr(other, name, patched)


def install() -> None:
    when_imported(TARGET, _patch)
