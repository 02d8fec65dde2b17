# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""A run's extension points (`hooks:` in the run config), each a `module:function` with its settings.

- `prepare_model(built_dir, out_dir, **settings) -> dict`: turns the model `build_model` made into the one the run
  serves and trains (written to `out_dir`); its record is kept with the cached model.
- `after_run(outcome, **settings) -> str | None`: after the trainer finished; the line it returns is printed last.

The CPU demo's warm start and held-out report are built on these (`atropos_verl/demo/hooks.py`): the launcher knows
nothing of the addition task.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atropos_verl.errors import ConfigError
from atropos_verl.launch.config import Hook


@dataclass(frozen=True)
class RunOutcome:
    """What an `after_run` hook gets: the run dir, the model the run started from, how it ended, its timings."""

    run_dir: Path
    model_path: str
    exit_code: int
    timings: dict[str, float] = field(default_factory=dict)


def load(hook: Hook, key: str) -> Callable[..., Any]:
    """The hook's function; a ConfigError naming `key` when it cannot be imported."""
    module_name, _, name = hook.call.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"hooks.{key}.call={hook.call!r}: {type(exc).__name__}: {exc}") from None
    if not callable(fn):
        raise ConfigError(f"hooks.{key}.call={hook.call!r} is not callable")
    return fn


def prepare_model(hook: Hook, built_dir: Path, out_dir: Path) -> dict[str, Any]:
    record = load(hook, "prepare_model")(built_dir, out_dir, **hook.settings)
    return dict(record or {})


def after_run(hook: Hook, outcome: RunOutcome) -> str | None:
    line = load(hook, "after_run")(outcome, **hook.settings)
    return None if line is None else str(line)
