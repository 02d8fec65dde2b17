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
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from atropos_verl.env_side.loading import CHECKOUT_ENV
from atropos_verl.errors import ConfigError

if TYPE_CHECKING:
    from atropos_verl.launch.config import RunConfig

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
        from atropos_verl.env_side.runner import _env_class_in, usable_class
        env_cls = getattr(module, class_name) if class_name else _env_class_in(module)
        if not (isinstance(env_cls, type) and issubclass(env_cls, BaseEnv)):
            raise TypeError(f"{spec!r} resolved to {env_cls!r}, which is not an atroposlib BaseEnv subclass")
        usable_class(env_cls)
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


class EnvironmentCheck:
    """The import check of every environment target, running in its own interpreter while the launcher goes on.

    It takes seconds (atroposlib imports torch), so the launcher finds or builds the model and starts the trainer
    meanwhile, and calls `wait()` before the trainer starts Ray (`atropos_verl.start_gate`) and before the API or any
    environment starts: a bad target still fails the run within seconds.
    """

    def __init__(self, targets: Sequence[str], *, checkout: Path | None = None, timeout: float = TIMEOUT_S) -> None:
        self.targets = list(dict.fromkeys(targets))
        self.timeout = timeout
        self.errors = {t: e for t in self.targets if (e := _syntax_error(t))}
        self.rest = [t for t in self.targets if t not in self.errors]
        self._proc: subprocess.Popen | None = None
        if self.rest:
            env = dict(os.environ)
            if checkout is not None:
                env[CHECKOUT_ENV] = str(checkout.resolve())
            # files, not pipes: nobody reads while the launcher works, and a full pipe would stall the check
            self._out, self._err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
            self._proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, *self.rest], env=env, text=True,
                                          stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL)
            self._started = time.monotonic()

    def raise_known(self) -> None:
        """Raise ConfigError now for what is known without the import (a file that does not parse); never waits."""
        if self.errors:
            raise ConfigError("\n".join(f"environments: {t}: {e}" for t, e in self.errors.items()))

    def wait(self) -> None:
        """Raise ConfigError with one line per environment target that does not import, naming the target."""
        if self._proc is not None:
            try:
                returncode = self._proc.wait(timeout=max(self.timeout - (time.monotonic() - self._started), 0.0))
            except subprocess.TimeoutExpired:
                self.cancel()
                raise ConfigError(f"environments: importing {', '.join(self.rest)} took over {self.timeout:.0f}s") \
                    from None
            self._proc = None
            self._collect(returncode)
        self.raise_known()

    def cancel(self) -> None:
        """Stop a check still running (the launcher is stopping for another reason); `wait()` then refuses."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._proc = None
        self._out.close()
        self._err.close()
        self.errors.update({t: "import check cancelled" for t in self.rest if t not in self.errors})

    def _collect(self, returncode: int) -> None:
        self._out.seek(0)
        self._err.seek(0)
        stdout, stderr = self._out.read(), self._err.read()
        self._out.close()
        self._err.close()
        seen = set()
        for line in stdout.splitlines():
            if line.startswith("PREFLIGHT "):
                item = json.loads(line[len("PREFLIGHT "):])
                seen.add(item["target"])
                if item["error"]:
                    self.errors[item["target"]] = item["error"].splitlines()[0]
        for t in self.rest:
            if t not in seen and t not in self.errors:
                last = (stderr.strip().splitlines() or [f"exit code {returncode}"])[-1]
                self.errors[t] = f"import check crashed: {last}"


def check_environments(targets: Sequence[str], *, checkout: Path | None = None, timeout: float = TIMEOUT_S) -> None:
    """Raise ConfigError with one line per environment target that does not import, naming the target."""
    EnvironmentCheck(targets, checkout=checkout, timeout=timeout).wait()


def preflight(config_path: Path) -> EnvironmentCheck:
    """What is checked before the launcher imports the stack (verl takes seconds): config, output_dir; the import
    check of the environments is started, for the launcher to `wait()` on."""
    from atropos_verl.launch.config import load_run_config
    from atropos_verl.launch.run_dir import RunDirLock, check_output_dir

    config = load_run_config(config_path)
    check_output_dir(config.output_dir)
    RunDirLock(config.run_dir).refuse_if_held()  # a second launcher on a live run dir refuses at once
    return EnvironmentCheck(env_targets(config, config_path.parent.resolve()), checkout=config.atropos_checkout)


def env_targets(config: RunConfig, config_dir: Path) -> list[str]:
    """What each environment of the run resolves to (a file, a module, a builtin name), as the runner loads it."""
    from atropos_verl.launch.plan import _resolve_env_target

    return [_resolve_env_target(spec, config.atropos_checkout, config_dir) for spec in config.environments]
