# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Which keys a list of Hydra override strings sets (`a.b=1`, `+a.c=x`, `++a.d=y`, `~a.e`).

Defaults this package fills in (the CPU platform's, asynchronous mode's, standalone placement's) never replace a key
the user set; all of them ask here. Imports nothing heavy: the launcher uses it before torch or verl are loaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def override_key(override: str) -> str | None:
    """The dotted key of one override string, without Hydra's `+`, `++` and `~` prefixes; None for an empty one."""
    head = override.split("=", 1)[0].strip()
    return head.lstrip("+~").strip() or None


def override_value(override: str) -> Any:
    """The value Hydra would parse from one override string (None for a deletion without a value)."""
    if "=" not in override:
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return OverridesParser.create().parse_override(override).value()
    except Exception:
        return override.split("=", 1)[1].strip()


def user_keys(user_overrides: Iterable[str]) -> dict[str, Any]:
    """Keys (and values) the user set in Hydra override strings."""
    return {k: override_value(o) for o in user_overrides if (k := override_key(o))}


def set_unless_user_set(config: Any, user_overrides: Iterable[str], key: str, value: Any) -> bool:
    """Set `key` to a default of ours unless an override of the user's names it; returns whether it was set."""
    from omegaconf import OmegaConf

    if any(override_key(o) == key for o in user_overrides):
        return False
    OmegaConf.update(config, key, value, merge=True, force_add=True)
    return True
