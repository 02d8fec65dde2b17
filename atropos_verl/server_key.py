# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The per-run API key of the inference servers, for runs whose servers listen on a routable address.

A single-node run binds its servers to 127.0.0.1 and needs no key. A multi-node run cannot: verl's servers bind the
node's address, and vLLM's OpenAI app (with `/load`, `/scale_elastic_ep`) would answer anyone on the network. There,
the launcher makes one key per run and hands it to each party through the channel it already reads:
- the trainer, in its environment (`KEY_ENV`); it passes the key on to the servers verl starts: vLLM reads
  `VLLM_API_KEY` (`vllm/entrypoints/serve/middleware/register.py`, guards `/v1`, `/v2`, `/inference`), which reaches
  every Ray worker on every node through the job's runtime_env; SGLang's key check is installed only by its own
  `launch_server`, which verl bypasses, so `ServerKeyGuard` guards verl's SGLang app instead
  (`trainer/drain/sglang_replica.py`), and verl's SGLang control client (weight pushes, memory release) sends the key
  from the same variable (`authorize_sglang_control_client`, loaded in every process through verl's plugin loop);
- each environment, as `api_key` of its `openai:` entries in the YAML it is started with;
- `doctor` and the live view, from `<run dir>/server_api_key` (owner-only, like the env YAMLs holding it).
`/health` and `/metrics` stay open in both engines, so health checks need no key.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from types import ModuleType
from typing import Any

from atropos_verl.import_hooks import when_imported

KEY_ENV = "ATROPOS_VERL_SERVER_API_KEY"
KEY_FILE = "server_api_key"
VLLM_KEY_ENV = "VLLM_API_KEY"
# The OpenAI client refuses an empty key; servers started without one ignore whatever is sent.
NO_KEY = "x"


def new_key() -> str:
    return secrets.token_urlsafe(32)


def write_private(path: Path, text: str) -> Path:
    """Write `text` to `path`, readable by its owner only (it may hold the key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Whole or not at all: a reader waiting for the file (an environment started early) never sees half of it.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)  # an existing file keeps its mode through O_CREAT
    os.replace(tmp, path)
    return path


def write_key(run_dir: Path, key: str) -> Path:
    return write_private(run_dir / KEY_FILE, key)


def read_key(run_dir: Path) -> str | None:
    """The live run's key, or None when the run has none (or the file is unreadable to this user)."""
    try:
        return (run_dir / KEY_FILE).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def from_environment() -> str | None:
    """The key the launcher gave this trainer process, if any."""
    return os.environ.get(KEY_ENV) or None


def auth_headers(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def for_servers() -> str | None:
    """The key in a process verl started (server actors, workers): it travels as `VLLM_API_KEY` in the runtime_env."""
    return os.environ.get(VLLM_KEY_ENV) or None


#: Paths answered without the key, as both engines leave them open: liveness and metrics only, no generation.
OPEN_PATHS = frozenset({"/health", "/ping", "/metrics"})


class ServerKeyGuard:
    """Pure ASGI middleware: every HTTP request but `OPEN_PATHS` must carry `Authorization: Bearer <key>`."""

    def __init__(self, app: Any, key: str) -> None:
        self.app = app
        self.expected = f"Bearer {key}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("path") in OPEN_PATHS or scope.get("method") == "OPTIONS":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        if secrets.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        body = b'{"error": "this server needs the run\'s key: Authorization: Bearer <key>"}'
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


SGLANG_CLIENT_MODULE = "verl.workers.rollout.sglang_rollout.http_server_engine"


def authorize_sglang_control_client(module: ModuleType) -> None:
    """verl's SGLang control client opens one aiohttp session per call (`AsyncHttpServerAdapter._get_session`) and
    sends no key: behind `ServerKeyGuard` every weight push and memory release would get 401. Each session it opens
    now carries the run's key when there is one."""
    cls = getattr(module, "AsyncHttpServerAdapter", None)
    if cls is None or getattr(cls._get_session, "_keyed", False):
        return
    original = cls._get_session

    @contextlib.asynccontextmanager
    async def keyed_session(self: Any) -> Any:
        async with original(self) as session:
            if (key := for_servers()) is not None:
                session.headers["Authorization"] = f"Bearer {key}"
            yield session

    keyed_session._keyed = True  # type: ignore[attr-defined]
    cls._get_session = keyed_session


def install() -> None:
    """verl plugin (`verl.plugins` entry point `server_key`): attach the client change to verl's module."""
    when_imported(SGLANG_CLIENT_MODULE, authorize_sglang_control_client)


install()
