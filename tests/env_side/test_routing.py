# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Every server an environment declares (one config, a list of any length, a ServerBaseline) becomes verl's, checked
against atroposlib's real ServerManager."""

from __future__ import annotations

import pytest
import yaml
from atroposlib.envs.server_handling.server_baseline import APIServerConfig, ServerBaseline
from atroposlib.envs.server_handling.server_manager import ServerManager

from atropos_verl.env_side import routing
from atropos_verl.env_side.patching import original, unwrap_method

VERL = [
    {"base_url": "http://127.0.0.1:4321/v1", "server_type": "openai", "model_name": "served", "api_key": "x",
     "tokenizer_name": "tok", "health_check": False, "timeout": 77},
    {"base_url": "http://127.0.0.1:4322/v1", "server_type": "openai", "model_name": "served", "api_key": "x",
     "tokenizer_name": "tok", "health_check": False, "timeout": 77},
]


def _own(port: int, **kw) -> APIServerConfig:
    return APIServerConfig(base_url=f"http://localhost:{port}/v1", model_name="their-model", api_key="k",
                           server_type="openai", health_check=False, **kw)


@pytest.fixture
def servers_file(tmp_path):
    path = tmp_path / "env.yaml"
    path.write_text(yaml.safe_dump({"env": {}, "openai": VERL}))
    routing.install(path)
    yield path
    unwrap_method(ServerManager, "__init__")


@pytest.mark.parametrize(
    "declared",
    [
        _own(9004, num_max_requests_at_once=3),
        [_own(9004, num_max_requests_at_once=3), _own(9005)],
        [_own(9004, num_max_requests_at_once=3), _own(9005), _own(9006)],
        ServerBaseline(model_name="their-model", num_max_requests_at_once=3),
    ],
    ids=["single", "list-of-2", "list-of-3", "server-baseline"],
)
def test_every_declared_form_is_routed_to_verl(servers_file, declared):
    manager = ServerManager(declared)
    assert [s.config.base_url for s in manager.servers] == [v["base_url"] for v in VERL]
    assert all(s.config.model_name == "served" and s.config.timeout == 77 for s in manager.servers)
    # how much traffic stays the environment's own setting
    assert all(s.config.num_max_requests_at_once == 3 for s in manager.servers)
    assert routing.RECORD.routed == [v["base_url"] for v in VERL]


def test_without_atroposlib_a_list_or_baseline_keeps_local_defaults():
    # What the routing exists for: atroposlib keeps a list as given and expands a baseline to ports 9004-9007.
    init = original(ServerManager, "__init__")
    manager = object.__new__(ServerManager)
    init(manager, [_own(9004), _own(9005)])
    assert [s.config.base_url for s in manager.servers] == ["http://localhost:9004/v1", "http://localhost:9005/v1"]
    manager = object.__new__(ServerManager)
    init(manager, ServerBaseline(model_name="m"))
    assert [s.config.base_url for s in manager.servers] == [f"http://localhost:{p}/v1" for p in range(9004, 9008)]


def test_by_hand_a_single_config_is_used_as_that_server(monkeypatch):
    monkeypatch.delenv(routing.SERVERS_FILE_ENV, raising=False)
    routing.install()
    try:
        manager = ServerManager(_own(4321))
        assert [s.config.base_url for s in manager.servers] == ["http://localhost:4321/v1"]
    finally:
        unwrap_method(ServerManager, "__init__")


def test_a_servers_file_without_servers_is_an_error(tmp_path):
    path = tmp_path / "env.yaml"
    path.write_text(yaml.safe_dump({"env": {}, "openai": [{"model_name": "m"}]}))
    with pytest.raises(ValueError, match="base_url"):
        routing.launcher_servers(path)


def test_servers_file_written_after_install_is_the_one_used(tmp_path):
    """The launcher starts environments before verl's servers are up and writes their YAML later: the routing reads
    it when the environment builds its ServerManager, and the runner waits for it to appear."""
    import threading

    from atropos_verl.env_side.runner import await_config

    path = tmp_path / "late.yaml"
    routing.install(path)
    try:
        writer = threading.Timer(0.5, lambda: path.write_text(yaml.safe_dump({"env": {}, "openai": VERL})))
        writer.start()
        await_config(["serve", "--config", str(path)], timeout=60)
        writer.join()
        manager = ServerManager([_own(9001)])
        assert [s.config.base_url for s in manager.servers] == [v["base_url"] for v in VERL]
    finally:
        unwrap_method(ServerManager, "__init__")
    with pytest.raises(SystemExit, match="did not appear within 0s"):
        await_config(["serve", "--config", str(tmp_path / "never.yaml")], timeout=0.01)
    await_config(["serve"], timeout=60)  # nothing to wait for without --config
