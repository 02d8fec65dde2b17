# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Warm start: TRAIN pairs only, stop the first time dev accuracy reaches the target, and deterministic weights."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from atropos_verl.demo.greedy import greedy_scores
from atropos_verl.demo.prompts import IGNORE_INDEX
from atropos_verl.demo.warm_start import RECORD_NAME, dev_and_sft_pairs, sft_examples, training_pairs, warm_start
from atropos_verl.envs.addition import END_OF_TURN, make_split

from .conftest import SMALL_LR, TARGET, THREADS


def test_training_rows_are_train_pairs_only(small_model):
    """Decode every row the warm start samples from: TRAIN pairs minus the dev slice, answer-only labels."""
    tokenizer = AutoTokenizer.from_pretrained(small_model)
    train, held_out = make_split(0, 1000)
    dev, sft = dev_and_sft_pairs(0, 1000, dev_size=200)
    assert dev == train[:200] and sft == train[200:]
    inputs, labels = sft_examples(tokenizer, data_seed=0, num_heldout=1000, dev_size=200)
    seen = set()
    for row, row_labels in zip(inputs.tolist(), labels.tolist(), strict=True):
        text = tokenizer.decode(row, skip_special_tokens=False)
        a, b = map(int, re.search(r"user\n(\d+)\+(\d+)=", text).groups())
        seen.add((a, b))
        target = [t for t in row_labels if t != IGNORE_INDEX]
        assert tokenizer.decode(target, skip_special_tokens=False) == f"{a + b}{END_OF_TURN}"
        unpadded = re.sub(f"(?:{re.escape(tokenizer.pad_token)})+$", "", text)
        assert unpadded.endswith(f"<|im_start|>assistant\n{a + b}{END_OF_TURN}")
    assert len(seen) == len(inputs) == 6900
    assert seen == set(train) - set(dev)
    assert not seen & set(held_out), "a held-out pair in the warm-start data"
    assert not seen & set(dev), "the stopping signal must be measured on pairs SFT does not see"
    # another split seed gives another held-out set, still excluded
    assert not set(training_pairs(5, 1000)) & set(make_split(5, 1000)[1])


def test_stops_the_first_time_dev_accuracy_reaches_target(small_warm, small_model):
    r = small_warm
    assert r.reached_target and r.steps < 2000
    steps, accuracies = zip(*r.history, strict=True)
    assert steps == tuple(range(25, r.steps + 1, 25))  # evaluated every 25 steps, last eval is the stop step
    assert accuracies[-1] >= TARGET and r.dev_accuracy == accuracies[-1]
    assert all(a < TARGET for a in accuracies[:-1]), "must stop at the first eval that reaches the target"
    assert len(accuracies) >= 2, "the target should take more than one eval, or the test shows nothing"

    # the saved model is the one that was evaluated at the stop step
    tokenizer = AutoTokenizer.from_pretrained(r.out_dir)
    model = AutoModelForCausalLM.from_pretrained(r.out_dir)
    dev = dev_and_sft_pairs(0, 1000, 200)[0]
    assert sum(greedy_scores(model, tokenizer, dev)) / len(dev) == r.dev_accuracy
    record = json.loads((Path(r.out_dir) / RECORD_NAME).read_text())
    assert record["steps"] == r.steps and record["dev_accuracy"] == r.dev_accuracy and record["reached_target"]
    assert record["settings"]["lr"] == SMALL_LR
    assert model.generation_config.eos_token_id == tokenizer.convert_tokens_to_ids(END_OF_TURN)


def test_same_seeds_same_weights(small_model, tmp_path):
    def run(name: str, seed: int) -> bytes:
        result = warm_start(
            small_model,
            tmp_path / name,
            seed=seed,
            lr=SMALL_LR,
            target_accuracy=2.0,
            eval_every=10,
            max_steps=20,
            threads=THREADS,
        )
        assert not result.reached_target and result.steps == 20 and [s for s, _ in result.history] == [10, 20]
        return (tmp_path / name / "model.safetensors").read_bytes()

    before = torch.random.get_rng_state()
    a, b, c = run("a", 0), run("b", 0), run("c", 1)
    assert torch.equal(before, torch.random.get_rng_state()), "warm start must not consume the caller's RNG"
    original = (small_model / "model.safetensors").read_bytes()
    assert a == b
    assert c != a and a != original
