# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""One way to wrap a method of an atroposlib or transformers class in the env process: idempotent and reversible."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

MARK = "_atropos_verl_wrapped"


def wrap_method(owner: type, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Replace `owner.name` with `make(original)` unless it is already ours; `original` stays on `__wrapped__`."""
    original = owner.__dict__.get(name) or getattr(owner, name)
    if getattr(original, MARK, False):
        return
    wrapper = functools.wraps(original)(make(original))
    setattr(wrapper, MARK, True)
    setattr(owner, name, wrapper)


def unwrap_method(owner: type, name: str) -> None:
    current = owner.__dict__.get(name)
    if current is not None and getattr(current, MARK, False):
        setattr(owner, name, current.__wrapped__)


def original(owner: type, name: str) -> Callable[..., Any]:
    """The unwrapped method (tests use it to show what a patch changes)."""
    current = getattr(owner, name)
    while getattr(current, MARK, False):
        current = current.__wrapped__
    return current
