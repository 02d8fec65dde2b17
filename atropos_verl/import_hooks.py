# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Run a patch right after a module is imported, without importing it ourselves.

The plugin is loaded from inside `import verl`, before most of verl exists. Importing the modules we patch at that
point would pull in transformers, FSDP and vLLM in every process that touches verl (and risks import cycles), so each
patch is attached to its target module and applied the moment that module finishes executing.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Callable
from types import ModuleType

_pending: dict[str, list[Callable[[ModuleType], None]]] = {}
_lock = threading.RLock()


class _PatchingLoader(importlib.abc.Loader):
    """Delegates to the real loader, then runs the patches registered for the module."""

    def __init__(self, inner: importlib.abc.Loader, name: str) -> None:
        self._inner = inner
        self._name = name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        with _lock:
            patches = _pending.pop(self._name, [])
        for patch in patches:
            patch(module)

    def __getattr__(self, item: str):  # e.g. get_source / is_package for tracebacks and pkgutil
        return getattr(self._inner, item)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps the loader that the rest of `sys.meta_path` finds for a watched module."""

    def find_spec(self, fullname: str, path, target=None):
        with _lock:
            if fullname not in _pending:
                return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchingLoader(spec.loader, fullname)
                return spec
        return None


_finder = _PostImportFinder()


def when_imported(module_name: str, patch: Callable[[ModuleType], None]) -> None:
    """Call `patch(module)` once `module_name` is imported; immediately if it already is."""
    module = sys.modules.get(module_name)
    if module is not None:
        patch(module)
        return
    with _lock:
        _pending.setdefault(module_name, []).append(patch)
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)


def pending_modules() -> tuple[str, ...]:
    """Watched modules not imported yet (for diagnostics and tests)."""
    with _lock:
        return tuple(_pending)
