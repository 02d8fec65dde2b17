# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The env runner's atroposlib corrections, checked against atroposlib's real ServerManager and BaseEnv."""

from __future__ import annotations

from atroposlib.envs.server_handling.server_baseline import APIServerConfig
from atroposlib.envs.server_handling.server_manager import ServerManager

from atropos_verl.launch import env_hooks


def _config() -> APIServerConfig:
    return APIServerConfig(base_url="http://127.0.0.1:4321/v1", model_name="m", api_key="x", server_type="openai",
                           tokenizer_name="none", health_check=False)


def test_single_config_is_used_as_that_server():
    env_hooks.list_single_server_config()
    manager = ServerManager(_config())
    assert [s.config.base_url for s in manager.servers] == ["http://127.0.0.1:4321/v1"]


def test_unpatched_atroposlib_invents_localhost_servers():
    # What the hook exists for: without it a single config is a template for ports 9004-9007.
    original = ServerManager.__init__.__wrapped__ if hasattr(ServerManager.__init__, "__wrapped__") else None
    init = original or ServerManager.__init__
    manager = object.__new__(ServerManager)
    init(manager, _config())
    assert [s.config.base_url for s in manager.servers] == [f"http://localhost:{p}/v1" for p in range(9004, 9008)]
