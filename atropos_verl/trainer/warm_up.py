# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""One small request per route to every rollout server, sent while the environments register.

A vLLM server's first sampled request compiles its sampler (`torch.compile`; 10-13 s on verl's server in the CPU
demo), and a burst of first chat requests is far slower than one: on a fresh stand-alone vLLM-CPU server 32
concurrent chat completions (n=8) took 21.7 s, and 0.29 s once one completion and one chat completion had been
answered. Environments open with such a burst 5 s after they register (atroposlib's `env_manager` waits), and they
register only once the trainer polls `/batch`: so the warm-up runs in a background thread from the moment the
endpoints are published, and the trainer goes on to poll. Best effort: a route a server refuses (a model without a
chat template) is logged and skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from atropos_verl import startup_times
from atropos_verl.server_key import auth_headers, from_environment

logger = logging.getLogger(__name__)

# What environments send first: token-id completions with log-probs (atroposlib's ManagedServer, the vLLM adapter)
# and chat completions (environments calling the OpenAI client directly).
ROUTES = (
    ("/v1/completions", {"prompt": [0, 1, 2, 3], "max_tokens": 2, "n": 2, "logprobs": 1}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "1+1="}], "max_tokens": 2, "n": 2,
                              "logprobs": True}),
)  # fmt: skip


def _warm_one(address: str, model: str, headers: dict[str, str], timeout: float) -> dict[str, float | None]:
    seconds: dict[str, float | None] = {}
    for path, body in ROUTES:
        start = time.monotonic()
        try:
            resp = httpx.post(f"http://{address}{path}", json={"model": model, **body}, headers=headers,
                              timeout=timeout)
            resp.raise_for_status()
            seconds[path] = time.monotonic() - start
        except httpx.HTTPError as exc:
            logger.info("warm-up %s on %s skipped (%s)", path, address, exc)
            seconds[path] = None
    return seconds


def warm_up_servers(addresses: list[str], model: str, *, timeout: float = 120.0) -> dict[str, dict[str, float | None]]:
    """Send each server one request per route (servers in parallel); returns seconds per route, None where refused."""
    if not addresses:
        return {}
    headers = auth_headers(from_environment())
    with ThreadPoolExecutor(len(addresses)) as pool:
        results = pool.map(lambda address: _warm_one(address, model, headers, timeout), addresses)
        return dict(zip(addresses, results, strict=True))


def start_warm_up(addresses: list[str], model: str, run_dir: str | Path | None) -> threading.Thread:
    """`warm_up_servers` in a daemon thread; prints the seconds per route and records `trainer/servers_warmed`."""

    def run() -> None:
        warmed = warm_up_servers(addresses, model)
        print(f"rollout servers warmed up (seconds per route): {warmed}", flush=True)
        startup_times.record(run_dir, "trainer", "servers_warmed")

    thread = threading.Thread(target=run, name="atropos-verl-warm-up", daemon=True)
    thread.start()
    return thread
