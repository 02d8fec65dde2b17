# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Held-out evaluation: the batched KV-cache path gives what HF `generate` item by item gives, scored by the env."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from atropos_verl.demo.greedy import completion_text, greedy_tokens
from atropos_verl.demo.heldout import heldout_accuracy
from atropos_verl.demo.prompts import end_of_turn_id, env_max_new_tokens, prompt_ids
from atropos_verl.envs.addition import SYSTEM_PROMPT, AdditionEnvConfig, make_split, score_completion

N = 200  # enough that the lightly trained test model gets several right and most wrong


def reference_scores(model_dir, pairs) -> tuple[list[str], list[float]]:
    """Per-item HF generate, exactly as one would write it by hand: the yardstick for the batched path."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    config = AdditionEnvConfig()
    texts, scores = [], []
    for a, b in pairs:
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": f"{a}+{b}="}]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")["input_ids"]
        out = model.generate(ids, max_new_tokens=config.max_new_tokens, do_sample=False)
        text = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=False)
        texts.append(text)
        scores.append(score_completion(text, a + b))
    return texts, scores


def test_batched_greedy_matches_per_item_generate(small_warm):
    held_out = make_split(0, 1000)[1][:N]
    ref_texts, ref_scores = reference_scores(small_warm.out_dir, held_out)
    assert 0 < sum(ref_scores) < N, "need a model that is right on some items and wrong on others"
    assert heldout_accuracy(small_warm.out_dir, n=N, batch_size=7) == pytest.approx(sum(ref_scores) / N)

    tokenizer = AutoTokenizer.from_pretrained(small_warm.out_dir)
    model = AutoModelForCausalLM.from_pretrained(small_warm.out_dir).eval()
    eos = end_of_turn_id(tokenizer)
    prompts = torch.tensor([prompt_ids(tokenizer, p) for p in held_out])
    assert prompts.shape[1] == 31
    rows = greedy_tokens(model, prompts, max_new_tokens=env_max_new_tokens(), eos_id=eos).tolist()
    ours = [completion_text(tokenizer, row, eos) for row in rows]
    # generate pads a finished row with pad tokens; the env's text stops at the first end of turn
    assert ours == [t.split("<|pad|>", 1)[0] for t in ref_texts]


def test_verl_style_checkpoint_without_tokenizer(small_warm, tmp_path):
    """A checkpoint folder holding only config + weights is read with the tokenizer from elsewhere."""
    model = AutoModelForCausalLM.from_pretrained(small_warm.out_dir)
    model.save_pretrained(tmp_path / "huggingface")
    expected = heldout_accuracy(small_warm.out_dir, n=N)
    assert heldout_accuracy(tmp_path / "huggingface", n=N, tokenizer_dir=small_warm.out_dir) == expected


def test_more_items_than_held_out_is_an_error(small_warm):
    with pytest.raises(ValueError):
        heldout_accuracy(small_warm.out_dir, n=1001)


def test_completion_text_stops_at_first_end_of_turn(small_model):
    tokenizer = AutoTokenizer.from_pretrained(small_model)
    eos = end_of_turn_id(tokenizer)
    digits = tokenizer("68", add_special_tokens=False)["input_ids"]
    assert completion_text(tokenizer, [*digits, eos, *digits], eos) == "68<|im_end|>"
    assert completion_text(tokenizer, [*digits, *digits], eos) == "6868"  # cut off: scores 0 in the env
