# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Find Atropos environments in a checkout by parsing its files with `ast`, resolving imports inside the checkout.

Importing an environment file would run its imports, which may need packages or credentials the user does not have, so
nothing is imported. Instead, names are resolved the way Python would resolve them: from the checkout root (on
sys.path), from a file's own folder (sibling imports of scripts run as `python environments/x/y.py`), relative to the
file's package, folders without `__init__.py` being namespace packages. That way an environment is found when it
derives from atroposlib's `BaseEnv` under an alias, or from another environment class defined in another file.
Each file is parsed once; cycles (imports or bases) end the search instead of recursing forever.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

TOKEN_LEVEL_CALLS = frozenset({"managed_server", "ManagedServer"})
TOKEN_LEVEL_NAMES = frozenset({"tokens_and_logprobs_completion"})
LIBRARY = "atroposlib"  # the framework: its BaseEnv is the root; its own ManagedServer calls say nothing about an env


def has_token_level_marker(tree: ast.AST) -> bool:
    """Whether code calls `managed_server(`/`ManagedServer(` or uses `tokens_and_logprobs_completion` (not comments)."""
    return any(_is_marker(node) for node in ast.walk(tree))


def _is_marker(node: ast.AST) -> bool:
    if isinstance(node, ast.Call):
        return _last_name(node.func) in TOKEN_LEVEL_CALLS
    return isinstance(node, ast.Name | ast.Attribute) and _last_name(node) in TOKEN_LEVEL_NAMES


def _last_name(node: ast.expr) -> str | None:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def _dotted(node: ast.expr) -> list[str] | None:
    """`a.b.C` (or `a.b.C[...]`, for Generic-style bases) as ["a", "b", "C"]; None for anything else."""
    if isinstance(node, ast.Subscript):
        return _dotted(node.value)
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else [*head, node.attr]
    return None


def _is_base_env(dotted: str) -> bool:
    parts = dotted.split(".")
    return parts[0] == LIBRARY and parts[-1] == "BaseEnv"


@dataclass(frozen=True)
class _Ref:
    """A name bound by an import: the dotted path it stands for, and the folder sibling imports are looked up in."""

    dotted: str
    folder: Path | None


_Binding = ast.ClassDef | _Ref


@dataclass
class _Module:
    """A parsed file, walked once: its classes (nested ones too), imports (also inside functions) and marker."""

    classes: list[ast.ClassDef]
    imports: list[ast.Import | ast.ImportFrom]
    marker: bool
    # name -> (line, binding, bound in an `except` handler), in source order
    bindings: dict[str, list[tuple[int, _Binding, bool]]] = field(default_factory=dict)
    star: list[_Ref] = field(default_factory=list)  # `from m import *`: names not bound here are looked up there

    def get(self, name: str, before: int | None = None) -> _Binding | None:
        """What `name` is bound to at module level before line `before` (so `class X(X)` sees the imported X).

        A binding in an `except` handler is a fallback (`try: from atroposlib... import BaseEnv` / `except ImportError:
        class BaseEnv: ...`): the checkout is read as if its imports work, so it counts only when nothing else binds.
        """
        found = [(b, fb) for line, b, fb in self.bindings.get(name, []) if before is None or line < before]
        preferred = [b for b, fallback in found if not fallback] or [b for b, _ in found]
        return preferred[-1] if preferred else None


class Checkout:
    """One Atropos checkout; caches parsed files, module look-ups, base-class and token-level answers."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._modules: dict[Path, _Module | None] = {}
        self._files: dict[tuple[tuple[str, ...], Path | None], Path | None] = {}
        self._env_memo: dict[tuple[Path, str], bool] = {}
        self._token_memo: dict[Path, bool] = {}
        self._import_memo: dict[Path, list[Path]] = {}

    # -- files and modules -------------------------------------------------------------------------------------------
    def module(self, path: Path) -> _Module | None:
        """The parsed file, or None when it cannot be read, decoded or parsed (such files are skipped)."""
        if path not in self._modules:
            try:
                text = path.read_text(encoding="utf-8")
                tree = ast.parse(text, filename=str(path))
            except (SyntaxError, ValueError, OSError, RecursionError):  # UnicodeDecodeError is a ValueError
                self._modules[path] = None
            else:
                nodes = list(ast.walk(tree))
                classes = [n for n in nodes if isinstance(n, ast.ClassDef)]
                imports = [n for n in nodes if isinstance(n, ast.Import | ast.ImportFrom)]
                maybe = any(m in text for m in TOKEN_LEVEL_CALLS | TOKEN_LEVEL_NAMES)  # skips most walks
                self._modules[path] = mod = _Module(classes, imports, maybe and any(_is_marker(n) for n in nodes))
                self._bind(path, mod, tree.body)
        return self._modules[path]

    def _bind(self, path: Path, mod: _Module, body: list[ast.stmt], fallback: bool = False) -> None:
        """Module-level names: classes and imports, also under if/try/with (not inside functions or classes)."""
        for node in body:
            bound: list[tuple[str, _Binding]] = []
            if isinstance(node, ast.ClassDef):
                bound.append((node.name, node))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    name = alias.asname or alias.name.split(".")[0]
                    bound.append((name, _Ref(alias.name if alias.asname else name, path.parent)))
            elif isinstance(node, ast.ImportFrom) and (source := self._from_source(path, node)) is not None:
                for alias in node.names:
                    if alias.name == "*":
                        mod.star.append(source)
                    else:
                        dotted = f"{source.dotted}.{alias.name}" if source.dotted else alias.name
                        bound.append((alias.asname or alias.name, _Ref(dotted, source.folder)))
            elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for block in ("body", "orelse", "finalbody"):
                    self._bind(path, mod, [s for s in getattr(node, block, []) if isinstance(s, ast.stmt)], fallback)
                for handler in getattr(node, "handlers", []):
                    self._bind(path, mod, handler.body, fallback=True)
            for name, binding in bound:
                mod.bindings.setdefault(name, []).append((node.lineno, binding, fallback))

    def _from_source(self, path: Path, node: ast.ImportFrom) -> _Ref | None:
        """The module a `from ... import` reads; a relative one becomes absolute from the root (no sibling lookup)."""
        if not node.level:
            return _Ref(node.module or "", path.parent)
        package = list(path.relative_to(self.root).parts[:-1])  # pkg/__init__.py and pkg/mod.py: both in pkg
        if node.level - 1 > len(package):
            return None
        package = package[: len(package) - (node.level - 1)]
        return _Ref(".".join([*package, *([node.module] if node.module else [])]), None)

    def _find(self, parts: tuple[str, ...], folder: Path | None) -> Path | None:
        """The file (`x.py` or `x/__init__.py`) a dotted module name names: in the importer's folder, else the root."""
        key = (parts, folder)
        if key not in self._files:
            self._files[key] = None
            for base in dict.fromkeys(b for b in (folder, self.root) if b is not None):
                target = base.joinpath(*parts)
                candidate = next((c for c in (target.with_suffix(".py"), target / "__init__.py") if c.is_file()), None)
                if candidate is not None:
                    self._files[key] = candidate
                    break
        return self._files[key]

    # -- classes -----------------------------------------------------------------------------------------------------
    def _lookup(self, dotted: str, folder: Path | None, seen: frozenset[tuple[str, Path | None]]) -> bool:
        """Whether `dotted` names atroposlib's BaseEnv or a class of the checkout deriving from it."""
        if _is_base_env(dotted):
            return True
        if (dotted, folder) in seen:  # `a` re-exports from `b`, which re-exports from `a`
            return False
        seen = seen | {(dotted, folder)}
        parts = tuple(dotted.split("."))
        for i in range(len(parts) - 1, 0, -1):  # the longest prefix that is a module file, then attributes in it
            path = self._find(parts[:i], folder)
            if path is None:
                continue
            mod = self.module(path)
            if mod is None:
                return False
            bound = mod.get(parts[i])
            if isinstance(bound, ast.ClassDef):
                return i == len(parts) - 1 and self.is_env(path, bound)
            if isinstance(bound, _Ref):
                return self._lookup(".".join([bound.dotted, *parts[i + 1 :]]), bound.folder, seen)
            rest = ".".join(parts[i:])
            return any(self._lookup(f"{ref.dotted}.{rest}", ref.folder, seen) for ref in mod.star)
        return False

    def is_env(self, path: Path, cls: ast.ClassDef) -> bool:
        """Whether `cls` (defined in `path`) derives from atroposlib's BaseEnv, possibly through other files."""
        key = (path, cls.name)
        if key not in self._env_memo:
            self._env_memo[key] = False  # provisional: a cycle of bases is not an environment
            mod = self.module(path)
            self._env_memo[key] = mod is not None and any(self._base_is_env(path, mod, cls, b) for b in cls.bases)
        return self._env_memo[key]

    def _base_is_env(self, path: Path, mod: _Module, cls: ast.ClassDef, base: ast.expr) -> bool:
        parts = _dotted(base)
        if not parts:
            return False
        bound = mod.get(parts[0], before=cls.lineno)
        if isinstance(bound, ast.ClassDef):
            return len(parts) == 1 and self.is_env(path, bound)
        if isinstance(bound, _Ref):
            return self._lookup(".".join([bound.dotted, *parts[1:]]), bound.folder, frozenset())
        return any(self._lookup(".".join([r.dotted, *parts]), r.folder, frozenset()) for r in mod.star)

    def env_classes(self, path: Path) -> list[str]:
        """Environment classes defined in one file (abstract intermediates included), in source order."""
        mod = self.module(path)
        if mod is None:
            return []
        return list(dict.fromkeys(node.name for node in mod.classes if self.is_env(path, node)))

    # -- token level -------------------------------------------------------------------------------------------------
    def _imports(self, path: Path) -> list[Path]:
        """Checkout files (outside atroposlib) that importing `path` runs, parent packages' `__init__.py` included."""
        if path in self._import_memo:
            return self._import_memo[path]
        mod = self.module(path)
        wanted: list[tuple[list[str], Path | None]] = []
        for node in mod.imports if mod is not None else []:
            if isinstance(node, ast.Import):
                wanted += [(alias.name.split("."), path.parent) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and (source := self._from_source(path, node)) is not None:
                base = source.dotted.split(".") if source.dotted else []
                wanted += [([*base, alias.name], source.folder) for alias in node.names if alias.name != "*"]
                wanted.append((base, source.folder))
        files = []
        for parts, folder in wanted:
            if parts and parts[0] != LIBRARY:
                files += [f for i in range(1, len(parts) + 1) if (f := self._find(tuple(parts[:i]), folder))]
        self._import_memo[path] = files = list(dict.fromkeys(files))
        return files

    def token_level(self, path: Path) -> bool:
        """Whether `path`, or a checkout module it imports (transitively), uses the token-level (ManagedServer) path."""
        if path not in self._token_memo:
            stack, seen, result = [path], {path}, False
            while stack and not result:
                current = stack.pop()
                mod = self.module(current)
                result = mod is not None and mod.marker
                fresh = [f for f in self._imports(current) if f not in seen]
                seen.update(fresh)
                stack += fresh
            self._token_memo[path] = result
        return self._token_memo[path]
