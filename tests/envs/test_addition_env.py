# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The builtin addition environment: its data/scoring logic, and a real run (vLLM + trajectory API + env runner)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import yaml
from atroposlib.envs.server_handling.managed_server import SequenceNode
from atroposlib.envs.server_handling.server_manager import APIServerConfig
from transformers import AutoTokenizer

from atropos_verl.env_side import vllm_adapter
from atropos_verl.env_side.runner import resolve_env
from atropos_verl.envs import BUILTIN_ENVS, load_builtin
from atropos_verl.envs.addition import (
    AdditionEnv,
    AdditionEnvConfig,
    build_messages,
    make_split,
    score_completion,
)
from atropos_verl.launch.api_server import AtroposAPIProcess
from atropos_verl.launch.processes import start_process, stop_process_group
from atropos_verl.models.tiny import build_tiny_model
from tests.launch.vllm_fixture import SERVED_NAME, running_vllm

# ---------------------------------------------------------------- logic (no server)


def test_split_is_fixed_disjoint_and_complete() -> None:
    train, held_out = make_split(0, 1000)
    assert len(held_out) == 1000 and len(train) == 7100
    assert not set(train) & set(held_out)
    assert set(train) | set(held_out) == {(a, b) for a in range(10, 100) for b in range(10, 100)}
    assert make_split(0, 1000) == (train, held_out)
    assert make_split(1, 1000)[1] != held_out


@pytest.mark.parametrize(
    ("text", "answer", "reward"),
    [
        ("68<|im_end|>", 68, 1.0),
        ("112<|im_end|>", 112, 1.0),
        ("68<|im_end|>junk", 68, 1.0),  # only the text before the first end of turn counts
        ("68", 68, 0.0),  # cut off before ending the turn
        ("67<|im_end|>", 68, 0.0),
        ("068<|im_end|>", 68, 0.0),
        ("68 <|im_end|>", 68, 0.0),
        ("<|im_end|>68", 68, 0.0),
        ("", 68, 0.0),
    ],
)
def test_score_completion(text: str, answer: int, reward: float) -> None:
    assert score_completion(text, answer) == reward


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("addition_model") / "model", seed=0)


def make_env(model_dir: Path, base_url: str = "http://127.0.0.1:9/v1", **env_fields) -> AdditionEnv:
    config = AdditionEnvConfig(tokenizer_name=str(model_dir), use_wandb=False, **env_fields)
    server = APIServerConfig(
        server_type="vllm", model_name=SERVED_NAME, base_url=base_url, api_key="x", tokenizer_name=str(model_dir)
    )
    return AdditionEnv(config, [server])


def test_score_nodes_builds_a_group_with_prompt_masks(model_dir: Path) -> None:
    env = make_env(model_dir, group_size=3)
    tok = env.tokenizer
    prompt = tok.encode(tok.apply_chat_template(build_messages(23, 45), add_generation_prompt=True, tokenize=False))
    completions = [tok.encode("68<|im_end|>"), tok.encode("67<|im_end|>"), tok.encode("68")]
    nodes = [
        SequenceNode(
            full_text="",
            tokens=prompt + c,
            masked_tokens=[-100] * len(prompt) + c,
            logprobs=[1.0] * len(prompt) + [-0.5] * len(c),
        )
        for c in completions
    ]
    group = env.score_nodes(nodes, 68)
    assert group["scores"] == [1.0, 0.0, 0.0]
    assert group["tokens"] == [prompt + c for c in completions]
    assert group["masks"] == [[-100] * len(prompt) + c for c in completions]
    assert group["inference_logprobs"] == [[1.0] * len(prompt) + [-0.5] * len(c) for c in completions]


def test_items_cycle_through_train_only(model_dir: Path) -> None:
    env = make_env(model_dir, num_heldout=8000)  # 100 train pairs: two passes are quick

    async def run():
        await env.setup()
        return [await env.get_next_item() for _ in range(200)]

    items = asyncio.run(run())
    assert set(items) == set(env.train) and not set(items) & set(env.held_out)
    assert sorted(items[:100]) == sorted(items[100:]) and items[:100] != items[100:]  # each pass reshuffled


def test_builtin_registry_and_runner_resolution(tmp_path: Path) -> None:
    assert BUILTIN_ENVS["addition"] == "atropos_verl.envs.addition:AdditionEnv"
    assert load_builtin("addition") is AdditionEnv
    assert resolve_env("addition") is AdditionEnv
    assert resolve_env("atropos_verl.envs.addition:AdditionEnv") is AdditionEnv
    assert resolve_env("atropos_verl.envs.addition") is AdditionEnv
    env_file = tmp_path / "my_env.py"
    env_file.write_text("from atropos_verl.envs.addition import AdditionEnv\nclass MyEnv(AdditionEnv):\n    pass\n")
    resolved = resolve_env(str(env_file))
    assert resolved.__name__ == "MyEnv" and issubclass(resolved, AdditionEnv)
    with pytest.raises(TypeError):
        resolve_env("atropos_verl.envs.addition:build_messages")
    with pytest.raises(LookupError):
        resolve_env("atropos_verl.env_side.vllm_adapter")  # defines no environment


# ---------------------------------------------------------------- against real servers


@pytest.fixture(scope="module")
def vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with running_vllm(tmp_path_factory.mktemp("addition_vllm")) as (server, served_dir):
        yield server.url, served_dir


def test_evaluate_scores_greedy_answers_on_held_out(vllm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from atroposlib.envs.server_handling import server_manager

    monkeypatch.setattr(server_manager, "VLLMServer", server_manager.VLLMServer)
    vllm_adapter.install()
    url, served_dir = vllm
    metrics_path = tmp_path / "eval.jsonl"
    env = make_env(served_dir, base_url=f"{url}/v1", eval_size=6, eval_metrics_path=str(metrics_path))

    async def run():
        await env.setup()
        return await env.evaluate()

    metrics = asyncio.run(run())
    # Independent greedy answers for the same pairs, scored the same way.
    tok = AutoTokenizer.from_pretrained(served_dir)
    expected = []
    for a, b in env.held_out[:6]:
        prompt = tok.encode(tok.apply_chat_template(build_messages(a, b), add_generation_prompt=True, tokenize=False))
        body = {"model": SERVED_NAME, "prompt": prompt, "max_tokens": 5, "temperature": 0.0, "return_token_ids": True}
        ids = httpx.post(f"{url}/v1/completions", json=body, timeout=60).json()["choices"][0]["token_ids"]
        expected.append(score_completion(tok.decode(ids, skip_special_tokens=False), a + b))
    assert metrics == {"eval/accuracy": sum(expected) / 6, "eval/num_items": 6.0}
    assert env.eval_metrics == list(metrics.items())
    record = json.loads(metrics_path.read_text().strip())
    assert record["eval/accuracy"] == metrics["eval/accuracy"] and record["step"] == 0


def _register_trainer(api_url: str, batch_size: int) -> None:
    body = {
        "wandb_group": "test",
        "wandb_project": "test",
        "batch_size": batch_size,
        "max_token_len": 128,
        "checkpoint_dir": "",
        "save_checkpoint_interval": -1,
        "starting_step": 0,
        "num_steps": 10,
    }
    httpx.post(f"{api_url}/register", json=body, timeout=10).raise_for_status()
    httpx.get(f"{api_url}/batch", timeout=10).raise_for_status()  # the first poll releases waiting envs


def test_env_runner_serves_groups_to_the_trajectory_api(vllm, tmp_path: Path) -> None:
    url, served_dir = vllm
    group_size, batch_size = 4, 8
    config = {
        "env": {
            "tokenizer_name": str(served_dir),
            "rollout_server_url": "",  # filled below
            "group_size": group_size,
            "total_steps": 2,
            "max_num_workers": 2,
            "use_wandb": False,
            "steps_per_eval": 1000,
            # The untrained tiny model almost never answers right; keep all-zero groups so a batch can form.
            "ensure_scores_are_not_same": False,
        },
        "openai": [
            {
                "server_type": "vllm",
                "base_url": f"{url}/v1",
                "model_name": SERVED_NAME,
                "api_key": "x",
                "tokenizer_name": str(served_dir),
                "timeout": 120,
            }
        ],
    }
    with AtroposAPIProcess(log_path=tmp_path / "api.log") as api:
        config["env"]["rollout_server_url"] = api.url
        config_path = tmp_path / "env.yaml"
        config_path.write_text(yaml.safe_dump(config))
        _register_trainer(api.url, batch_size)
        argv = [sys.executable, "-m", "atropos_verl.env_side.runner", "addition", "serve", "--config"]
        env_proc = start_process([*argv, str(config_path), "--env.temperature", "1.0"], log_path=tmp_path / "env.log")
        try:
            batch = None
            deadline = time.monotonic() + 180
            while batch is None and time.monotonic() < deadline:
                assert env_proc.poll() is None, (tmp_path / "env.log").read_text()[-3000:]
                batch = httpx.get(f"{api.url}/batch", timeout=10).json()["batch"]
                time.sleep(0.5)
            assert batch is not None, (tmp_path / "env.log").read_text()[-3000:]
        finally:
            pid = env_proc.pid
            stop_process_group(env_proc)
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE

    log = (tmp_path / "env.log").read_text()
    assert "/generate" not in log  # the adapter, not atroposlib's /generate client, made the calls
    tok = AutoTokenizer.from_pretrained(served_dir)
    sequences = sum(len(group["tokens"]) for group in batch)
    assert sequences == batch_size and all(len(group["tokens"]) == group_size for group in batch)
    for group in batch:
        for tokens, masks, score, logprobs in zip(
            group["tokens"], group["masks"], group["scores"], group["inference_logprobs"], strict=True
        ):
            prompt_len = masks.count(-100)
            assert prompt_len == 31 and masks[:prompt_len] == [-100] * prompt_len
            completion = tokens[prompt_len:]
            assert masks[prompt_len:] == completion and 1 <= len(completion) <= 5
            assert len(logprobs) == len(tokens) and logprobs[:prompt_len] == [1.0] * prompt_len
            assert all(lp < 0 for lp in logprobs[prompt_len:])
            prompt_text = tok.decode(tokens[:prompt_len], skip_special_tokens=False)
            a, b = map(int, prompt_text.split("<|im_start|>user\n", 1)[1].split("=", 1)[0].split("+"))
            assert score == score_completion(tok.decode(completion, skip_special_tokens=False), a + b)
            # Sampler logprobs equal the model's prefill scoring of the same tokens.
            body = {"model": SERVED_NAME, "prompt": tokens, "max_tokens": 1, "prompt_logprobs": 0}
            scored = httpx.post(f"{url}/v1/completions", json=body, timeout=60).json()["choices"][0]["prompt_logprobs"]
            for pos in range(prompt_len, len(tokens)):
                assert scored[pos][str(tokens[pos])]["logprob"] == pytest.approx(logprobs[pos], abs=1e-3)
