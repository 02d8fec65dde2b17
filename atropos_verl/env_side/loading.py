# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Import an environment file the way its author ran it: as a module of its package, from its checkout.

Atropos environments live in folders of a repository checkout and import each other three ways: siblings by bare name
(`import utils`), package-relative (`from .scoring import`), and from the checkout root (`from environments.x import`,
as when run from the repository root). Loading the file as `<dotted path from the root>` with the root and the file's
folder on `sys.path` makes all three work; folders without `__init__.py` are namespace packages.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import keyword
import re
import sys
from pathlib import Path
from types import ModuleType

#: Set by the launcher to the run config's `atropos_checkout`; otherwise the root is found from markers.
CHECKOUT_ENV = "ATROPOS_VERL_CHECKOUT"
ROOT_MARKERS = (".git", "pyproject.toml", "setup.py")


def find_root(path: Path, checkout: Path | None = None) -> Path:
    """The directory the file's dotted module path starts from.

    The checkout when the file lies inside it; else the nearest ancestor holding a repository marker; else the
    folder above the file's chain of regular packages (`__init__.py` folders).
    """
    path = path.resolve()
    if checkout is not None:
        checkout = checkout.resolve()
        if checkout in path.parents:
            return checkout
    for parent in path.parents:
        if any((parent / marker).exists() for marker in ROOT_MARKERS):
            return parent
    top = path.parent
    while (top / "__init__.py").is_file() and top.parent != top:
        top = top.parent
    return top


def module_name(path: Path, root: Path) -> str:
    """The dotted name `path` is imported as: its path from `root`, each part made an identifier (`pokemon-showdown`
    becomes `pokemon_showdown`): folders named so cannot be written in an import, but their files still load."""
    parts = path.resolve().relative_to(root).with_suffix("").parts
    return ".".join(_identifier(p) for p in parts)


def _identifier(part: str) -> str:
    name = re.sub(r"\W", "_", part)
    return name if name.isidentifier() and not keyword.iskeyword(name) else f"_{name}"


def _declare_packages(path: Path, root: Path, name: str) -> None:
    """Make each folder between `root` and `path` an importable package under the (made-up) name `module_name` gives
    it, where its real name is not an identifier, so the file's package-relative imports resolve."""
    folders = path.resolve().relative_to(root).parts[:-1]
    dotted = name.split(".")[:-1]
    for depth in range(1, len(folders) + 1):
        package = ".".join(dotted[:depth])
        if package in sys.modules or all(p.isidentifier() for p in folders[:depth]):
            continue
        spec = importlib.machinery.ModuleSpec(package, None, is_package=True)
        spec.submodule_search_locations = [str(root.joinpath(*folders[:depth]))]
        sys.modules[package] = importlib.util.module_from_spec(spec)


def load_file(path: str | Path, checkout: str | Path | None = None) -> ModuleType:
    """Import `path` as a module of its package (see the module docstring); errors name the file."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"environment file not found: {path}")
    root = find_root(path, Path(checkout) if checkout else None)
    for entry in (str(path.parent), str(root)):  # root first in the search order
        if entry in sys.path:
            sys.path.remove(entry)
        sys.path.insert(0, entry)
    name = module_name(path, root)
    if path.parent == root:
        # A file at the root has no package: a unique name keeps it from shadowing (or being shadowed by) a module.
        name = f"_atropos_env_{name}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    if any(not part.isidentifier() for part in path.resolve().relative_to(root).parts[:-1]):
        _declare_packages(path, root, name)
    module = importlib.import_module(name)
    loaded = Path(getattr(module, "__file__", "") or "").resolve()
    if loaded != path:
        raise ImportError(f"{path}: importing it as '{name}' found {loaded} (a package of that name shadows it)")
    return module
