# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Small corrections the env runner applies to atroposlib before an environment starts (no atroposlib file edited).

* A single `APIServerConfig` that names a `base_url` is used as that one server. atroposlib treats any non-list config
  as a template and invents `http://localhost:9004-9007/v1` (`server_handling/server_manager.py:104-145`), so an
  environment whose `config_init` returns one config would never reach the server the launcher wrote into its YAML.
* After `/register-env` succeeds, the environment's id and pid are written to `$ATROPOS_VERL_ENV_STATUS_FILE`, which
  is how the launcher tells "alive" from "alive and registered".
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path

STATUS_FILE_ENV = "ATROPOS_VERL_ENV_STATUS_FILE"


def list_single_server_config() -> None:
    from atroposlib.envs.server_handling import server_manager
    from atroposlib.envs.server_handling.server_baseline import APIServerConfig

    init = server_manager.ServerManager.__init__
    if getattr(init, "_atropos_verl", False):
        return

    @functools.wraps(init)
    def __init__(self, configs, *args, **kwargs):  # noqa: N807 - replaces a dunder
        if isinstance(configs, APIServerConfig) and configs.base_url:
            configs = [configs]
        init(self, configs, *args, **kwargs)

    __init__._atropos_verl = True
    server_manager.ServerManager.__init__ = __init__


def record_registration(path: str | Path | None = None) -> None:
    path = path or os.environ.get(STATUS_FILE_ENV)
    if not path:
        return
    from atroposlib.envs.base import BaseEnv

    register = BaseEnv.register_env
    if getattr(register, "_atropos_verl", False):
        return

    @functools.wraps(register)
    async def register_env(self, *args, **kwargs):
        result = await register(self, *args, **kwargs)
        record = {"env_id": self.env_id, "pid": os.getpid(), "time": time.time(), "name": self.name}
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(target)
        return result

    register_env._atropos_verl = True
    BaseEnv.register_env = register_env


def install() -> None:
    list_single_server_config()
    record_registration()
