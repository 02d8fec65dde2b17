# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Atropos environments shipped with this package, addressable by a short name (`env_runner addition serve ...`).

Entries are import paths, resolved only when asked for, so listing them does not import atroposlib.
"""

from __future__ import annotations

import importlib

BUILTIN_ENVS: dict[str, str] = {
    "addition": "atropos_verl.envs.addition:AdditionEnv",
}


def load_builtin(name: str) -> type:
    """The env class registered under `name`; KeyError (listing the names) if there is none."""
    try:
        target = BUILTIN_ENVS[name]
    except KeyError:
        raise KeyError(f"no builtin environment {name!r}; builtins: {sorted(BUILTIN_ENVS)}") from None
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)
