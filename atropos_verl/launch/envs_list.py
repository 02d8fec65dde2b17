# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""`atropos-verl envs list`: builtin environments, those in an Atropos checkout, and installed ones.

Checkout environments are found by parsing (`ast`), never importing: importing an environment file runs its imports,
which may need packages or credentials the user does not have. Whether an environment uses the token-level path
(`ManagedServer`, needs token ids and logprobs from the server) or only chat/completions is read from its source.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from atropos_verl.envs import BUILTIN_ENVS

ENTRY_POINT_GROUP = "atropos_verl.envs"
TOKEN_LEVEL_MARKERS = ("managed_server(", "ManagedServer(")


@dataclass
class EnvEntry:
    name: str
    source: str  # "builtin", "checkout" or "installed"
    location: str  # module:Class, or file path
    path: str  # "token-level (ManagedServer)" or "chat only"


def generation_path(source_text: str) -> str:
    return "token-level (ManagedServer)" if any(m in source_text for m in TOKEN_LEVEL_MARKERS) else "chat only"


def _base_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):  # Generic[...] style bases
        return _base_name(node.value)
    return None


def base_env_classes(source_text: str) -> list[str]:
    """Classes of a module that derive from `BaseEnv`, directly or through another class of the same module."""
    tree = ast.parse(source_text)
    classes = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, node in classes.items():
            if name in found:
                continue
            bases = {_base_name(b) for b in node.bases}
            if "BaseEnv" in bases or bases & found:
                found.add(name)
                changed = True
    return [name for name in classes if name in found]


def scan_checkout(checkout: Path) -> list[EnvEntry]:
    root = checkout / "environments"
    if not root.is_dir():
        raise FileNotFoundError(f"{checkout} has no environments/ directory; is it an Atropos checkout?")
    entries = []
    for path in sorted(root.rglob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
            classes = base_env_classes(text)
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for cls in classes:
            entries.append(EnvEntry(cls, "checkout", f"{path.relative_to(checkout)}:{cls}", generation_path(text)))
    return entries


def _module_source(module: str) -> str:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return ""
    return Path(spec.origin).read_text(encoding="utf-8")


def builtin_entries() -> list[EnvEntry]:
    return [
        EnvEntry(name, "builtin", target, generation_path(_module_source(target.split(":")[0])))
        for name, target in sorted(BUILTIN_ENVS.items())
    ]


def installed_entries() -> list[EnvEntry]:
    """Environments other packages declare under the `atropos_verl.envs` entry-point group."""
    entries = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            text = inspect.getsource(ep.load())
        except Exception:
            text = ""
        entries.append(EnvEntry(ep.name, "installed", ep.value, generation_path(text)))
    return entries


def list_envs(checkout: Path | None = None) -> list[EnvEntry]:
    entries = builtin_entries() + installed_entries()
    if checkout is not None:
        entries += scan_checkout(checkout)
    return entries
