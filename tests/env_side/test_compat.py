# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""transformers-4 behaviour of `apply_chat_template`, which atroposlib 0.4.0 and environments rely on."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from transformers import BatchEncoding, PreTrainedTokenizerBase

from atropos_verl.env_side import compat
from atropos_verl.env_side.patching import original, unwrap_method
from atropos_verl.models.tiny import build_tiny_tokenizer

CHAT = [{"role": "user", "content": "1+2?"}, {"role": "assistant", "content": "3"}]


@pytest.fixture
def tokenizer():
    return build_tiny_tokenizer()


def test_unshimmed_transformers_returns_a_batch_encoding(tokenizer):
    # Why the shim exists. If this fails, transformers returns lists again and `compat` can go.
    apply = original(PreTrainedTokenizerBase, "apply_chat_template")
    assert isinstance(apply(tokenizer, CHAT), BatchEncoding)


def test_shim_returns_ids_unless_a_dict_is_asked_for(tokenizer):
    compat.install()
    try:
        ids = tokenizer.apply_chat_template(CHAT)
        assert isinstance(ids, list) and all(isinstance(i, int) for i in ids)
        assert ids == tokenizer.apply_chat_template(CHAT, tokenize=True, return_dict=True)["input_ids"]
        assert isinstance(tokenizer.apply_chat_template(CHAT, tokenize=False), str)
        assert isinstance(tokenizer.apply_chat_template(CHAT, return_dict=True), BatchEncoding)
    finally:
        unwrap_method(PreTrainedTokenizerBase, "apply_chat_template")


def test_atroposlib_tokenize_for_trainer_posts_json_in_the_runner(tmp_path):
    # atroposlib's own helper, in a process set up like an env process: the result must be JSON-serialisable ids.
    tok_dir = tmp_path / "tok"
    build_tiny_tokenizer().save_pretrained(tok_dir)
    code = (
        "import json; from atropos_verl.env_side.runner import install_all; install_all();"
        "from transformers import AutoTokenizer;"
        "from atroposlib.utils.tokenize_for_trainer import tokenize_for_trainer;"
        f"tok = AutoTokenizer.from_pretrained({str(tok_dir)!r});"
        f"out = tokenize_for_trainer(tok, {CHAT!r}); print(json.dumps(out))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(out["tokens"]) == len(out["masks"]) > 0
    trained = [t for t, m in zip(out["tokens"], out["masks"], strict=True) if m != -100]
    assert trained and trained == out["tokens"][-len(trained):]
