# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The pinned upstream sources the GPU path relies on, read without installing them.

The GPU engines cannot be installed beside the CPU world (other torch, CUDA builds), so their contract is checked on
their source: each pinned wheel is fetched once with `pip download --no-deps`, only its Python files under the named
folders are kept, and the copy is cached (`ATROPOS_VERL_UPSTREAM_CACHE`, default `~/.cache/atropos-verl/upstream`).
The pins are read where they are declared, so a bumped pin is checked against its own release: SGLang from this
package's `[sglang]` extra, vLLM from verl 0.9.1's `[vllm]` extra. verl itself is the installed 0.9.1.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from functools import cache
from importlib.metadata import requires
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("ATROPOS_VERL_UPSTREAM_CACHE", Path.home() / ".cache" / "atropos-verl" / "upstream"))


def _exact_pin(requirements: list[str], dist: str) -> str:
    for req in requirements:
        if match := re.match(rf"^{re.escape(dist)}\s*==\s*([\w.]+)", req.strip(), re.IGNORECASE):
            return match.group(1)
    raise AssertionError(f"no exact pin of {dist} in {requirements}")


def sglang_pin() -> str:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return _exact_pin(extras["sglang"], "sglang")


def vllm_pin() -> str:
    return _exact_pin([r.split(";")[0] for r in requires("verl") or [] if 'extra == "vllm"' in r], "vllm")


def fetch(dist: str, version: str, folders: tuple[str, ...]) -> Path:
    """The `.py` files under `folders` of `dist==version`'s wheel, in the cache (fetched on first use)."""
    root = CACHE / f"{dist}-{version}"
    stamp = root / ".folders.json"
    if stamp.is_file() and set(json.loads(stamp.read_text())) >= set(folders):
        return root
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
             "--dest", tmp, f"{dist}=={version}"],
            capture_output=True, text=True, timeout=900,
        )
        assert done.returncode == 0, f"pip download {dist}=={version} failed (the registry is needed):\n{done.stderr}"
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                if name.endswith(".py") and name.startswith(folders):
                    zf.extract(name, root)
    stamp.write_text(json.dumps(sorted(folders)))
    return root


def verl_root() -> Path:
    spec = importlib.util.find_spec("verl")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))).parent


@cache
def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def module_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def top_level_names(tree: ast.Module) -> set[str]:
    """Names a module defines or imports at its top level (inside top-level if/try too)."""
    names: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.If | ast.Try):
                visit(node.body)
                visit(node.orelse)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    return names


def find_class(tree: ast.Module, name: str) -> ast.ClassDef:
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise AssertionError(f"class {name} not found")


def find_function(scope: ast.AST, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef:
    for node in ast.walk(scope):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return node
    raise AssertionError(f"function {name} not found")


def source_of(node: ast.AST) -> str:
    return ast.unparse(node)


def first_line(scope: ast.AST, needle: str) -> int:
    """The first line inside `scope` of an expression whose source (as ast.unparse writes it) contains `needle`."""
    lines = [n.lineno for n in ast.walk(scope) if isinstance(n, ast.expr) and needle in ast.unparse(n)]
    assert lines, f"{needle!r} not found"
    return min(lines)


def exported_names(root: Path, module: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """`top_level_names` of a module plus what its `from X import *` lines bring in."""
    path = module_file(root, module)
    if path is None or module in seen:
        return set()
    tree = parse(path)
    names = top_level_names(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            source = f"{base}.{node.module}" if node.level and node.module else (node.module or base)
            names |= exported_names(root, source, seen | {module})
    return names


def self_attributes(cls: ast.ClassDef) -> set[str]:
    """Attributes a class's methods assign on `self` (instance attributes)."""
    return {t.attr for n in ast.walk(cls) if isinstance(n, ast.Assign | ast.AnnAssign)
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
            if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"}


def resolves(root: Path, dotted: str) -> bool:
    """Whether `module.Class.member` exists in the source under `root`: a module, then classes, functions or
    module/class-level names inside it (instance attributes are not targets: they live on objects)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        path = module_file(root, ".".join(parts[:i]))
        if path is None:
            continue
        scope: ast.AST = parse(path)
        for name in parts[i:]:
            body = getattr(scope, "body", [])
            defs = [n for n in body if isinstance(n, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                    and n.name == name]
            assigned = {t.id for n in body if isinstance(n, ast.Assign | ast.AnnAssign)
                        for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)}
            if defs:
                scope = defs[0]
            elif name in assigned or (isinstance(scope, ast.Module) and name in top_level_names(scope)):
                scope = ast.Module(body=[], type_ignores=[])
            else:
                return False
        return True
    return False
