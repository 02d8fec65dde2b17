# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The per-run inference server key: when a run gets one, where it goes (trainer, Ray workers, SGLang's arguments, the
environments' YAML, doctor) and that nothing that logs the config keeps it."""

from __future__ import annotations

import asyncio
import contextlib
import stat
import threading
import time
import types
from pathlib import Path

import aiohttp
import httpx
import pytest
import yaml
from omegaconf import OmegaConf

from atropos_verl.launch.config import load_run_config
from atropos_verl.launch.doctor import check_server_key
from atropos_verl.launch.env_configs import write_env_configs, write_env_yaml
from atropos_verl.launch.plan import make_plan
from atropos_verl.server_key import (
    KEY_ENV,
    VLLM_KEY_ENV,
    ServerKeyGuard,
    auth_headers,
    authorize_sglang_control_client,
    new_key,
    read_key,
    write_key,
)
from atropos_verl.trainer.endpoints import Endpoints

BASE = {"run_name": "r", "model_path": "/models/m", "environments": [{"env": "addition"}]}
EPS = Endpoints(addresses=["10.0.0.1:1111", "10.0.0.2:2222"], backend="vllm", served_model_name="/m",
                tokenizer_path="/m")


def _plan(tmp_path: Path, overrides: list[str] | None = None, **doc):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({**BASE, "output_dir": str(tmp_path), **doc}))
    return make_plan(load_run_config(path), overrides or [], has_accelerator=False)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_key_exactly_when_the_servers_are_reachable_from_other_hosts(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert not _plan(tmp_path).needs_server_key  # one node: the servers bind loopback
    assert _plan(tmp_path, ray_address="auto").needs_server_key
    assert _plan(tmp_path, ["trainer.nnodes=2"]).needs_server_key
    assert _plan(tmp_path, server_api_key="per_run").needs_server_key
    assert not _plan(tmp_path, ray_address="auto", server_api_key="none").needs_server_key
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert _plan(tmp_path).needs_server_key


def test_key_file_and_env_yamls_are_owner_only_and_carry_the_key(tmp_path):
    key = new_key()
    assert len(key) >= 40 and key != new_key()
    path = write_key(tmp_path, key)
    assert _mode(path) == 0o600 and read_key(tmp_path) == key
    assert read_key(tmp_path / "elsewhere") is None
    plan = _plan(tmp_path, server_api_key="per_run",
                 environments=[{"env": "addition", "instances": 2, "server": {"api_key": "mine", "timeout": 5}}])
    plan.server_key = key
    yamls = write_env_configs(plan, EPS)
    assert sorted(yamls) == ["addition-0", "addition-1"]
    for p in yamls.values():
        doc = yaml.safe_load(p.read_text())
        assert _mode(p) == 0o600
        # the run's key wins over a key in the env's `server:` keys: the servers refuse any other
        assert [o["api_key"] for o in doc["openai"]] == [key, key] and doc["openai"][0]["timeout"] == 5


def test_without_a_key_the_yaml_keeps_the_placeholder_or_the_users_key(tmp_path):
    doc = yaml.safe_load(write_env_yaml(tmp_path / "a.yaml", {}, EPS).read_text())
    assert {o["api_key"] for o in doc["openai"]} == {"x"}  # the OpenAI client refuses an empty key
    doc = yaml.safe_load(write_env_yaml(tmp_path / "b.yaml", {}, EPS, {"api_key": "theirs"}).read_text())
    assert {o["api_key"] for o in doc["openai"]} == {"theirs"}
    assert auth_headers(None) == {} and auth_headers("k") == {"Authorization": "Bearer k"}


@pytest.mark.parametrize("backend", ["vllm", "sglang"])
def test_trainer_hands_the_key_to_the_servers_and_masks_it_in_logged_config(monkeypatch, backend):
    from atropos_verl.trainer.main import _server_key_env
    from atropos_verl.trainer.ray_trainer import _without_server_key

    config = OmegaConf.create({"actor_rollout_ref": {"rollout": {"name": backend, "engine_kwargs": {"sglang": {}}}}})
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv(VLLM_KEY_ENV, "")  # recorded, so the value the trainer code sets is removed after the test
    monkeypatch.delenv(VLLM_KEY_ENV)
    assert _server_key_env(config) == {}
    monkeypatch.setenv(KEY_ENV, "k3y")
    # the runtime_env of the Ray job: vLLM's server actors read VLLM_API_KEY, on whichever node they run
    assert _server_key_env(config) == {VLLM_KEY_ENV: "k3y"}
    sglang_kwargs = config.actor_rollout_ref.rollout.engine_kwargs.sglang
    assert sglang_kwargs.get("api_key") == ("k3y" if backend == "sglang" else None)
    logged = _without_server_key(OmegaConf.to_container(config))
    assert "k3y" not in str(logged)


def test_doctor_fails_a_routable_server_without_a_key():
    assert check_server_key("127.0.0.1:8000", None).ok
    bad = check_server_key("10.1.2.3:8000", None)
    assert not bad.ok and "server_api_key" in bad.hint


class ControlClient:
    """verl's `AsyncHttpServerAdapter` session shape (`http_server_engine.py` `_get_session`: one aiohttp session per
    call, opened in an async context manager); verl's module cannot be imported without SGLang, and
    tests/contracts/test_sglang_contract.py checks that its client opens every session this way."""

    @contextlib.asynccontextmanager
    async def _get_session(self):
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        try:
            yield session
        finally:
            await session.close()

    async def post(self, url: str) -> int:
        async with self._get_session() as session, session.post(url, json={}) as response:
            return response.status


def _guarded_app(key: str):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def ok(_request):
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route(p, ok, methods=["GET", "POST"]) for p in
                            ("/health", "/update_weights_from_tensor", "/v1/chat/completions", "/generate")])
    app.add_middleware(ServerKeyGuard, key=key)
    return app


def test_sglang_control_client_sends_the_key_the_guard_asks_for(monkeypatch):
    import uvicorn

    from atropos_verl.launch.processes import free_port

    key = new_key()
    port = free_port("127.0.0.1")
    server = uvicorn.Server(uvicorn.Config(_guarded_app(key), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    module = types.ModuleType("verl_sglang_client_shape")
    module.AsyncHttpServerAdapter = type("AsyncHttpServerAdapter", (ControlClient,), {})
    try:
        assert httpx.get(f"{base}/health").status_code == 200  # health stays open
        for path in ("/v1/chat/completions", "/generate", "/update_weights_from_tensor"):
            assert httpx.post(f"{base}{path}", json={}).status_code == 401
            assert httpx.post(f"{base}{path}", json={}, headers={"Authorization": "Bearer wrong"}).status_code == 401
            assert httpx.post(f"{base}{path}", json={}, headers=auth_headers(key)).status_code == 200
        client = module.AsyncHttpServerAdapter()
        assert asyncio.run(client.post(f"{base}/update_weights_from_tensor")) == 401  # verl's client as shipped
        monkeypatch.setenv(VLLM_KEY_ENV, key)  # as the runtime_env hands it to every worker
        authorize_sglang_control_client(module)
        authorize_sglang_control_client(module)  # idempotent
        assert asyncio.run(client.post(f"{base}/update_weights_from_tensor")) == 200
        monkeypatch.delenv(VLLM_KEY_ENV)
        assert asyncio.run(client.post(f"{base}/update_weights_from_tensor")) == 401  # no key, none sent
    finally:
        server.should_exit = True
        thread.join(10)
