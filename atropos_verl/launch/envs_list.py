# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""`atropos-verl envs list`: builtin environments, those in an Atropos checkout, and installed ones.

Checkout environments are found by parsing (`ast`), never importing: importing an environment file runs its imports,
which may need packages or credentials the user does not have. Imports are resolved inside the checkout
(`env_discovery`), so aliases of `BaseEnv` and subclasses of environments from other files are found too. Whether an
environment uses the token-level path (`ManagedServer`, needs token ids and logprobs from the server) or only
chat/completions is read from its module and the checkout modules it imports.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import textwrap
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from atropos_verl.envs import BUILTIN_ENVS
from atropos_verl.launch.env_discovery import TOKEN_LEVEL_CALLS, TOKEN_LEVEL_NAMES, Checkout, has_token_level_marker

ENTRY_POINT_GROUP = "atropos_verl.envs"
TOKEN_LEVEL = "token-level (ManagedServer)"
CHAT_ONLY = "chat only"


@dataclass
class EnvEntry:
    name: str
    source: str  # "builtin", "checkout" or "installed"
    location: str  # module:Class, or file path
    path: str  # "token-level (ManagedServer)" or "chat only"
    check_targets: tuple[str, ...] = ()  # how `envs check` names it (its last verdict is looked up by these)


def generation_path(source_text: str) -> str:
    """The label for one piece of source; text that does not parse falls back to a plain search for the markers."""
    try:
        token_level = has_token_level_marker(ast.parse(textwrap.dedent(source_text)))
    except (SyntaxError, ValueError):
        markers = [f"{m}(" for m in TOKEN_LEVEL_CALLS] + list(TOKEN_LEVEL_NAMES)
        token_level = any(m in source_text for m in markers)
    return TOKEN_LEVEL if token_level else CHAT_ONLY


def base_env_classes(path: Path, checkout: Path) -> list[str]:
    """Environment classes defined in `path`, a file of `checkout`, with imports resolved inside the checkout."""
    return Checkout(checkout).env_classes(Path(path).resolve())


def scan_checkout(checkout: Path) -> list[EnvEntry]:
    """Every environment class under `environments/`; files that cannot be read or parsed are skipped."""
    found = Checkout(checkout)
    root = found.root / "environments"
    if not root.is_dir():
        raise FileNotFoundError(f"{checkout} has no environments/ directory; is it an Atropos checkout?")
    entries = []
    for path in sorted(root.rglob("*.py")):
        classes = found.env_classes(path)
        if not classes:
            continue
        label, where = TOKEN_LEVEL if found.token_level(path) else CHAT_ONLY, path.relative_to(found.root)
        full = str(path.resolve())
        entries += [EnvEntry(cls, "checkout", f"{where}:{cls}", label, (full, f"{full}:{cls}")) for cls in classes]
    return entries


def _module_source(module: str) -> str:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return ""
    return Path(spec.origin).read_text(encoding="utf-8")


def builtin_entries() -> list[EnvEntry]:
    return [
        EnvEntry(name, "builtin", target, generation_path(_module_source(target.split(":")[0])), (name, target))
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
        entries.append(EnvEntry(ep.name, "installed", ep.value, generation_path(text), (ep.value,)))
    return entries


def list_envs(checkout: Path | None = None) -> list[EnvEntry]:
    entries = builtin_entries() + installed_entries()
    if checkout is not None:
        entries += scan_checkout(checkout)
    return entries


def last_check(entry: EnvEntry) -> str:
    """The verdict of the last `envs check` of this environment on this machine, or "-"."""
    from atropos_verl.launch.envs_check import last_result

    for target in entry.check_targets:
        if (found := last_result(target)) is not None:
            return "pass" if found.get("verdict") == "pass" else f"fail: {str(found.get('cause'))[:60]}"
    return "-"
