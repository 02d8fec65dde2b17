# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Run any Atropos environment, unmodified, against verl's servers: `python -m atropos_verl.env_side.runner ENV serve`.

ENV is a builtin name (`addition`), a module path (`pkg.mod:Class` or `pkg.mod`), or a Python file (for example
`environments/gsm8k_server.py` in an Atropos checkout, imported as a module of its package: `loading`). Before the
environment is built the runner installs, in this process only: the `/v1/completions` adapter for
`server_type: vllm`, routing of every declared server to verl's replicas, transformers-4 compatibility, abort
retries on every server path, sampling-temperature stamps and the health/status record. Then it hands everything
after ENV to the environment's own atroposlib CLI (`serve`, `process`, `evaluate`, `--config`, `--env.*`).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
import time
from pathlib import Path
from types import ModuleType

from atropos_verl.env_side import (
    aborts,
    compat,
    over_context,
    policy_version,
    posting,
    routing,
    sampling,
    start_pause,
    token_budget,
    vllm_adapter,
)
from atropos_verl.env_side.loading import CHECKOUT_ENV, load_file
from atropos_verl.envs import BUILTIN_ENVS, load_builtin

logger = logging.getLogger(__name__)

USAGE = "usage: python -m atropos_verl.env_side.runner ENV {serve,process,evaluate} [--config FILE] [--env.* ...]"


def _without_evaluate(env_cls: type) -> type:
    """`env_cls` with evaluation off: atroposlib declares `evaluate` abstract, and some environments never define it
    (they cannot be built otherwise). Training does not need it; the run warns once."""

    async def evaluate(self, *args, **kwargs) -> None:
        return None

    logger.warning("%s does not implement evaluate(): it runs with evaluation off", env_cls.__name__)
    return type(env_cls.__name__, (env_cls,), {"evaluate": evaluate, "__module__": env_cls.__module__,
                                              "__doc__": env_cls.__doc__, "_atropos_verl_evaluation_off": True})


def usable_class(env_cls: type) -> type:
    """A concrete class, the same one with evaluation off when `evaluate` is all it lacks; else LookupError naming
    what is missing."""
    missing = sorted(getattr(env_cls, "__abstractmethods__", ()))
    if not missing:
        return env_cls
    if missing == ["evaluate"]:
        return _without_evaluate(env_cls)
    raise LookupError(f"{env_cls.__module__}:{env_cls.__name__} cannot be built: it does not implement "
                      f"{', '.join(missing)} (abstract in atroposlib's BaseEnv)")


def _env_class_in(module: ModuleType) -> type:
    """The one `BaseEnv` subclass defined in `module` (imported ones are not candidates), as `usable_class` makes it."""
    from atroposlib.envs.base import BaseEnv

    defined = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, BaseEnv) and obj.__module__ == module.__name__
    ]
    # A file may define a base environment and its concrete subclass: the most derived classes are the candidates.
    found = [c for c in defined if not any(o is not c and issubclass(o, c) for o in defined)]
    if len(found) != 1:
        names = sorted(c.__name__ for c in found)
        raise LookupError(f"expected one BaseEnv subclass in {module.__name__}, found {names}; name it: MODULE:CLASS")
    return usable_class(found[0])


def resolve_env(spec: str) -> type:
    """The `BaseEnv` subclass named by `spec` (builtin name, `pkg.mod:Class`, `pkg.mod`, or a `.py` file path)."""
    from atroposlib.envs.base import BaseEnv

    if spec in BUILTIN_ENVS:
        env_cls = load_builtin(spec)
    else:
        target, _, class_name = spec.partition(":")
        if target.endswith(".py") or Path(target).is_file():
            module = load_file(Path(target), os.environ.get(CHECKOUT_ENV))
        else:
            module = importlib.import_module(target)
        env_cls = getattr(module, class_name) if class_name else _env_class_in(module)
    if not (inspect.isclass(env_cls) and issubclass(env_cls, BaseEnv)):
        raise TypeError(f"{spec!r} resolved to {env_cls!r}, which is not an atroposlib BaseEnv subclass")
    return usable_class(env_cls)


def install_all() -> posting.EnvStatus:
    """Everything the env process needs before an environment class is imported or built."""
    compat.install()
    vllm_adapter.install()
    aborts.install()
    routing.install()
    sampling.install()
    policy_version.install()
    start_pause.install()
    status = posting.EnvStatus(os.environ.get(posting.STATUS_FILE_ENV))
    posting.install(status)
    token_budget.install(status)
    over_context.install(status)
    return status


def await_config(argv: list[str], timeout: float) -> None:
    """Wait up to `timeout` s for the `--config FILE` of `argv` to appear (nothing to wait for without one)."""
    if timeout <= 0 or "--config" not in argv[:-1]:
        return
    path = Path(argv[argv.index("--config") + 1])
    deadline = time.monotonic() + timeout
    while not path.is_file():
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} did not appear within {timeout:.0f}s: the launcher writes it when verl's "
                             f"servers are up; see the trainer's log")
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        print(f"builtin environments: {', '.join(sorted(BUILTIN_ENVS))}")
        raise SystemExit(0 if argv else 2)
    status = install_all()
    try:
        env_cls = resolve_env(argv[0])
        status.update(imported=time.time())  # the start-up breakdown's "environment imported" (startup_times)
        await_config(argv, float(os.environ.get(routing.AWAIT_CONFIG_ENV) or 0))
        # atroposlib's CLI (pydantic-cli) parses sys.argv itself.
        sys.argv = [f"env_runner {argv[0]}", *argv[1:]]
        env_cls.cli()
    except (Exception, SystemExit) as exc:
        # What ended the process, in its status record: the launcher's end line and doctor read it from there.
        if not (isinstance(exc, SystemExit) and exc.code in (0, None)):
            status.update(last_error=f"{type(exc).__name__}: {exc}"[:2000], exited=time.time())
        if isinstance(exc, SystemExit) and isinstance(exc.code, str):
            # A stop of ours with a message (over_context): one line, named, as the launcher's end line reads it,
            # and the last: the interpreter's teardown of the environment's pending coroutines would log errors of
            # its own after it.
            print(f"{type(exc).__name__}: {exc.code}", file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(1)
        raise


if __name__ == "__main__":
    main()
