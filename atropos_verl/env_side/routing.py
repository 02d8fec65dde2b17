# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Every inference server an environment declares becomes one of verl's replicas.

atroposlib resolves an environment's servers from its `config_init` and the YAML `openai:` section
(`server_handling/openai_server.py` `resolve_openai_configs`): a default list of two or more servers, or a
`ServerBaseline`, keeps the environment's own defaults (`localhost:9004-9007`), whatever the YAML says; a single
`APIServerConfig` is a template for those ports (`server_manager.py` `ServerManager.__init__`). All of it ends in
`ServerManager(configs, ...)`, which this module wraps: the configs it receives are replaced by one `APIServerConfig`
per verl replica, read from the generated YAML the launcher wrote. Where to send traffic is ours (`base_url`,
`server_type`, `model_name`, `tokenizer_name`, `api_key` and the run config's `server:` keys); how much traffic is
the environment's (`num_max_requests_at_once`, `num_requests_for_eval`, `rolling_buffer_length`, ...).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import yaml

from atropos_verl.env_side.patching import wrap_method

logger = logging.getLogger(__name__)

#: The generated YAML of this environment process (its `openai:` entries are verl's replicas).
SERVERS_FILE_ENV = "ATROPOS_VERL_SERVERS_FILE"
#: Seconds the runner waits for that YAML when it does not exist yet. The launcher starts the environments while
#: verl's servers come up, so their imports (atroposlib, torch: seconds) overlap that wait; it writes the file, with
#: the servers' addresses, once they are published (`runner.await_config`).
AWAIT_CONFIG_ENV = "ATROPOS_VERL_AWAIT_CONFIG_S"


def launcher_servers(path: str | Path) -> list[dict[str, Any]]:
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    entries = doc.get("openai")
    entries = [entries] if isinstance(entries, dict) else list(entries or [])
    if not entries or not all(isinstance(e, dict) and e.get("base_url") for e in entries):
        raise ValueError(f"{path}: 'openai:' must list verl's servers, each with a base_url; got {entries!r}")
    return entries


def declared_configs(configs: Any) -> list[Any]:
    if configs is None:
        return []
    return list(configs) if isinstance(configs, list | tuple) else [configs]


def route(configs: Any, servers: list[dict[str, Any]]) -> list[Any]:
    """One `APIServerConfig` per verl server; the environment's non-routing settings carried over from its first."""
    from atroposlib.envs.server_handling.server_baseline import APIServerConfig

    declared = declared_configs(configs)
    kept: dict[str, Any] = {}
    if declared and hasattr(declared[0], "model_dump"):
        kept = {k: v for k, v in declared[0].model_dump().items() if k in APIServerConfig.model_fields}
    return [APIServerConfig(**{**kept, **entry}) for entry in servers]


class RoutingRecord:
    """What the environment declared and what it was given instead (for the status file and tests)."""

    def __init__(self) -> None:
        self.declared: list[str] = []
        self.routed: list[str] = []


RECORD = RoutingRecord()


def install(servers_file: str | Path | None = None) -> None:
    """Wrap `ServerManager.__init__`. Without a servers file (the runner used by hand), only a single
    `APIServerConfig` naming a `base_url` is kept as that one server instead of a template for four local ports."""
    from atroposlib.envs.server_handling import server_manager
    from atroposlib.envs.server_handling.server_baseline import APIServerConfig

    path = servers_file or os.environ.get(SERVERS_FILE_ENV)

    def make(init):
        def __init__(self, configs, *args, **kwargs):  # noqa: N807 - replaces a dunder
            # read here, not at install: the launcher writes the file after this process started (AWAIT_CONFIG_ENV)
            servers = launcher_servers(path) if path else None
            declared = declared_configs(configs)
            RECORD.declared = [str(getattr(c, "base_url", None) or type(c).__name__) for c in declared]
            if servers is not None:
                configs = route(configs, servers)
                logger.info("servers %s -> verl's %s", RECORD.declared, [c.base_url for c in configs])
            elif isinstance(configs, APIServerConfig) and configs.base_url:
                configs = [configs]
            RECORD.routed = [str(getattr(c, "base_url", "")) for c in declared_configs(configs)]
            init(self, configs, *args, **kwargs)

        return __init__

    wrap_method(server_manager.ServerManager, "__init__", make)
