# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Held-out accuracy of a saved checkpoint: the demo's BEFORE and AFTER numbers.

Greedy exact match on the first `n` held-out pairs of the addition env's split, with the env's prompt, generation
budget and `score_completion`. It reads any HF model directory, including the `huggingface/` folder of a verl
checkpoint (pass `tokenizer_dir` when that folder has no tokenizer files).
"""

from __future__ import annotations

from pathlib import Path

from atropos_verl.demo.greedy import greedy_scores
from atropos_verl.envs.addition import make_split


def heldout_accuracy(
    model_dir: str | Path,
    *,
    n: int = 1000,
    data_seed: int = 0,
    num_heldout: int = 1000,
    batch_size: int = 500,
    tokenizer_dir: str | Path | None = None,
    threads: int | None = None,
) -> float:
    """Fraction of the first `n` held-out pairs answered exactly (answer, then `<|im_end|>`, within the budget).

    `data_seed` and `num_heldout` must be the env's (`AdditionEnvConfig`), or the "held-out" pairs are other pairs.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, held_out = make_split(data_seed, num_heldout)
    if not 1 <= n <= len(held_out):
        raise ValueError(f"n must be in [1, {len(held_out)}], got {n}")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir or model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads or previous_threads)
    try:
        scores = greedy_scores(model, tokenizer, held_out[:n], batch_size=batch_size)
    finally:
        torch.set_num_threads(previous_threads)
    return sum(scores) / len(scores)
