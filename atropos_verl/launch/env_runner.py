# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Run any Atropos environment against verl's vLLM servers: `python -m atropos_verl.launch.env_runner ENV serve ...`.

ENV is a builtin name (`addition`), a module path (`pkg.mod:Class` or `pkg.mod`), or a Python file (for example
`environments/gsm8k_server.py` in an Atropos checkout). The runner installs the `/v1/completions` adapter for
`server_type: vllm`, then hands everything after ENV to the environment's own atroposlib CLI (`serve`, `process`,
`evaluate`, with `--config` and `--env.*`/`--openai.*` flags), so environments need no change.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType

from atropos_verl.envs import BUILTIN_ENVS, load_builtin
from atropos_verl.launch import env_hooks, vllm_adapter

USAGE = "usage: python -m atropos_verl.launch.env_runner ENV {serve,process,evaluate} [--config FILE] [--env.* ...]"


def _load_file(path: Path) -> ModuleType:
    """Import a file as a uniquely named module, with its directory importable (env files import their siblings)."""
    path = path.resolve()
    sys.path.insert(0, str(path.parent))
    module_name = f"_atropos_env_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _env_class_in(module: ModuleType) -> type:
    """The one concrete `BaseEnv` subclass defined in `module` (imported ones are not candidates)."""
    from atroposlib.envs.base import BaseEnv

    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, BaseEnv)
        and obj.__module__ == module.__name__
        and not inspect.isabstract(obj)
    ]
    if len(found) != 1:
        names = sorted(c.__name__ for c in found)
        raise LookupError(f"expected one BaseEnv subclass in {module.__name__}, found {names}; name it: MODULE:CLASS")
    return found[0]


def resolve_env(spec: str) -> type:
    """The `BaseEnv` subclass named by `spec` (builtin name, `pkg.mod:Class`, `pkg.mod`, or a `.py` file path)."""
    from atroposlib.envs.base import BaseEnv

    if spec in BUILTIN_ENVS:
        env_cls = load_builtin(spec)
    else:
        target, _, class_name = spec.partition(":")
        if target.endswith(".py") or Path(target).is_file():
            module = _load_file(Path(target))
        else:
            module = importlib.import_module(target)
        env_cls = getattr(module, class_name) if class_name else _env_class_in(module)
    if not (inspect.isclass(env_cls) and issubclass(env_cls, BaseEnv)):
        raise TypeError(f"{spec!r} resolved to {env_cls!r}, which is not an atroposlib BaseEnv subclass")
    return env_cls


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        print(f"builtin environments: {', '.join(sorted(BUILTIN_ENVS))}")
        raise SystemExit(0 if argv else 2)
    vllm_adapter.install()
    env_hooks.install()
    env_cls = resolve_env(argv[0])
    # atroposlib's CLI (pydantic-cli) parses sys.argv itself.
    sys.argv = [f"env_runner {argv[0]}", *argv[1:]]
    env_cls.cli()


if __name__ == "__main__":
    main()
