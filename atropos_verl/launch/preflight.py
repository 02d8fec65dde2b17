# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Import every environment before anything starts: a syntax error or a missing module is a one-line config error
in seconds, not three env restarts after the API, trainer and vLLM came up.

The import is the env runner's own (`loading.load_file`, `runner.resolve_env`), in one fresh interpreter for all
targets, so it sees exactly what the env process will; nothing of the stack is started. Files get a `compile()`
first, in this process: a syntax error needs no interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from atropos_verl.env_side.loading import CHECKOUT_ENV
from atropos_verl.errors import ConfigError

TIMEOUT_S = 120.0

_SCRIPT = r"""
import json, os, sys
from pathlib import Path


def check(spec):
    target, _, class_name = spec.partition(":")
    if target.endswith(".py") or Path(target).is_file():
        # The file first, as the runner loads it: its own import errors show before atroposlib (torch) is imported.
        from atropos_verl.env_side.loading import CHECKOUT_ENV, load_file
        module = load_file(Path(target), os.environ.get(CHECKOUT_ENV))
        from atroposlib.envs.base import BaseEnv
        from atropos_verl.env_side.runner import _env_class_in
        env_cls = getattr(module, class_name) if class_name else _env_class_in(module)
        if not (isinstance(env_cls, type) and issubclass(env_cls, BaseEnv)):
            raise TypeError(f"{spec!r} resolved to {env_cls!r}, which is not an atroposlib BaseEnv subclass")
        return
    from atropos_verl.env_side.runner import resolve_env
    resolve_env(spec)


for spec in sys.argv[1:]:
    try:
        check(spec)
        err = None
    except BaseException as exc:
        err = f"{type(exc).__name__}: {exc}"
    print("PREFLIGHT " + json.dumps({"target": spec, "error": err}), flush=True)
"""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"{type(exc).__name__}: {exc.msg} (line {exc.lineno})"
    return f"{type(exc).__name__}: {exc}"


def _syntax_error(target: str) -> str | None:
    path = Path(target.partition(":")[0])
    if path.suffix != ".py" or not path.is_file():
        return None
    try:
        compile(path.read_bytes(), str(path), "exec")
    except (SyntaxError, ValueError) as exc:
        return _describe(exc)
    return None


def check_environments(targets: Sequence[str], *, checkout: Path | None = None, timeout: float = TIMEOUT_S) -> None:
    """Raise ConfigError with one line per environment target that does not import, naming the target."""
    targets = list(dict.fromkeys(targets))
    errors = {t: e for t in targets if (e := _syntax_error(t))}
    rest = [t for t in targets if t not in errors]
    if rest:
        env = dict(os.environ)
        if checkout is not None:
            env[CHECKOUT_ENV] = str(checkout.resolve())
        try:
            out = subprocess.run([sys.executable, "-c", _SCRIPT, *rest], env=env, capture_output=True, text=True,
                                 timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ConfigError(f"environments: importing {', '.join(rest)} took over {timeout:.0f}s") from None
        seen = set()
        for line in out.stdout.splitlines():
            if line.startswith("PREFLIGHT "):
                item = json.loads(line[len("PREFLIGHT "):])
                seen.add(item["target"])
                if item["error"]:
                    errors[item["target"]] = item["error"].splitlines()[0]
        for t in rest:
            if t not in seen and t not in errors:
                last = (out.stderr.strip().splitlines() or [f"exit code {out.returncode}"])[-1]
                errors[t] = f"import check crashed: {last}"
    if errors:
        raise ConfigError("\n".join(f"environments: {t}: {e}" for t, e in errors.items()))


def preflight(config_path: Path) -> None:
    """What is checked before the launcher imports the stack (verl takes seconds): config, output_dir, env imports."""
    from atropos_verl.launch.config import load_run_config
    from atropos_verl.launch.plan import _resolve_env_target
    from atropos_verl.launch.run_dir import RunDirLock, check_output_dir

    config = load_run_config(config_path)
    check_output_dir(config.output_dir)
    RunDirLock(config.run_dir).refuse_if_held()  # a second launcher on a live run dir refuses at once
    base = config_path.parent.resolve()
    targets = [_resolve_env_target(spec, config.atropos_checkout, base) for spec in config.environments]
    check_environments(targets, checkout=config.atropos_checkout)
