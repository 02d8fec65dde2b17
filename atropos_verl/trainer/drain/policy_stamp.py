# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The policy version on every answer of a vLLM server verl started, for asynchronous runs' staleness accounting.

Runs inside the vLLM server's Ray actor, where verl serves vLLM's OpenAI app in the actor's own event loop: verl
hands the app our ASGI middleware through `engine_kwargs.vllm.middleware` (vLLM's `--middleware`), and the replica
(`vllm_replica.DrainingVLLMHttpServer.set_global_steps`, which verl calls after every weight push) sets the version
here. The header is written when the response starts, i.e. after a non-streamed completion has finished; pushes are
drained (no request runs across one), so that is the version that generated the whole completion.

The same middleware counts answered generation requests, so the trainer can tell how many completed while the actor
was updating (the overlap asynchronous mode exists for), and the choices it answered with `finish_reason: "abort"`:
what a weight sync that aborts instead of draining hands the environments (`atropos/served_aborted_total`).
"""

from __future__ import annotations

import re
from typing import Any

from atropos_verl.wire import POLICY_VERSION_HEADER

#: This process's served version (None until the first push), the completions answered and the tokens they generated
#: so far (from the `usage` of non-streamed answers), and the choices answered as aborted.
_STATE: dict[str, Any] = {"version": None, "answered": 0, "completion_tokens": 0, "aborted": 0}

_COMPLETION_TOKENS = re.compile(rb'"completion_tokens"\s*:\s*(\d+)')
_ABORTED = re.compile(rb'"finish_reason"\s*:\s*"abort"')

#: Routes whose answers are completions (counted); every route gets the header.
_GENERATION_PATHS = ("/v1/completions", "/v1/chat/completions")


def set_version(version: int) -> None:
    _STATE["version"] = int(version)


def stats() -> dict[str, Any]:
    """{"version", "answered", "completion_tokens", "aborted"}: what this server serves and has answered so far."""
    return dict(_STATE)


class PolicyVersionStamp:
    """Pure ASGI middleware (no per-request task, unlike Starlette's `BaseHTTPMiddleware`)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        counted = scope.get("path") in _GENERATION_PATHS

        async def stamped_send(message: dict[str, Any]) -> None:
            nonlocal counted
            if message["type"] == "http.response.start":
                version = _STATE["version"]
                if version is not None:
                    headers = list(message.get("headers") or [])
                    headers.append((POLICY_VERSION_HEADER.encode(), str(version).encode()))
                    message = {**message, "headers": headers}
                counted = counted and message.get("status", 500) < 400
            elif message["type"] == "http.response.body" and counted:
                body = message.get("body") or b""
                if (match := _COMPLETION_TOKENS.search(body)) is not None:
                    _STATE["completion_tokens"] += int(match.group(1))
                _STATE["aborted"] += len(_ABORTED.findall(body))
                if not message.get("more_body", False):
                    _STATE["answered"] += 1
                    counted = False
            await send(message)

        await self.app(scope, receive, stamped_send)


#: The dotted path verl passes to vLLM (`engine_kwargs.vllm.middleware`).
MIDDLEWARE = f"{__name__}.{PolicyVersionStamp.__name__}"
