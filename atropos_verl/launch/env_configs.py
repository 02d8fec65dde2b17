# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The YAML each environment process is started with: its `env:` settings and one `openai:` entry per verl replica,
written whenever the trainer publishes (new) endpoints.

atroposlib's `serve --config` reads `env:` and `openai:` (`atroposlib/envs/base.py` cli); a list of two or more
`openai:` entries gives one server per entry (`server_handling/openai_server.py` resolve_openai_configs), a single
mapping gives one server. Environments then pick the healthy server with the most free slots per request.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from atropos_verl.server_key import NO_KEY, write_private
from atropos_verl.trainer.endpoints import Endpoints

if TYPE_CHECKING:
    from atropos_verl.launch.plan import RunPlan

# Atropos server types per verl rollout backend. vLLM's OpenAI app has no /generate route: the env runner installs
# an adapter for `vllm` that serves the token-level path over /v1/completions. SGLang's own app has /generate.
SERVER_TYPES = {"vllm": "vllm", "sglang": "sglang"}


def server_entries(
    endpoints: Endpoints, extra: dict[str, Any] | None = None, api_key: str | None = None
) -> list[dict[str, Any]]:
    """One APIServerConfig mapping per replica address; `api_key` is the run's server key (`server_key`), if any."""
    try:
        server_type = SERVER_TYPES[endpoints.backend]
    except KeyError:
        raise ValueError(f"no Atropos server type for rollout backend '{endpoints.backend}'") from None
    entries = []
    for url in endpoints.base_urls:
        entry = {
            "base_url": url,
            "server_type": server_type,
            "model_name": endpoints.served_model_name,
            "tokenizer_name": endpoints.tokenizer_path,
            "api_key": NO_KEY,
            "timeout": 1200,
            "health_check": True,
        }
        entry.update(extra or {})
        if api_key:  # the servers refuse any other
            entry["api_key"] = api_key
        entries.append(entry)
    return entries


def env_status_file(run_dir: Path, name: str) -> Path:
    """Where an environment process keeps its status record (`posting.EnvStatus`); the trainer reads names from it."""
    return run_dir / "envs" / f"{name}.status.json"


def write_env_yaml(
    path: Path,
    env_settings: dict[str, Any],
    endpoints: Endpoints,
    server_extra: dict[str, Any] | None = None,
    api_key: str | None = None,
) -> Path:
    """Written owner-only: it may hold the run's server key."""
    servers = server_entries(endpoints, server_extra, api_key)
    settings = dict(env_settings)
    settings["tokenizer_name"] = endpoints.tokenizer_path  # the served model's tokenizer, as the trainer loaded it
    doc = {"env": settings, "openai": servers if len(servers) > 1 else servers[0]}
    return write_private(path, yaml.safe_dump(doc, sort_keys=False))


def env_yaml_path(plan: RunPlan, name: str) -> Path:
    return plan.run_dir / "envs" / f"{name}.yaml"


def write_env_configs(plan: RunPlan, endpoints: Endpoints) -> dict[str, Path]:
    """One YAML per environment process (its settings, one server entry per replica, the run's server key)."""
    return {
        env.name: write_env_yaml(env_yaml_path(plan, env.name), env.env_settings, endpoints, env.spec.server,
                                 api_key=plan.server_key)
        for env in plan.envs
    }
