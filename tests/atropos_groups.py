# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Builders of ScoredData groups in Atropos' wire format (mask = token id on trained positions, -100 elsewhere)."""

from __future__ import annotations

from typing import Any


def sequence(prompt: list[int], completion: list[int], env_spans: tuple[tuple[int, int], ...] = ()) -> dict:
    """One sequence: tokens, masks (prompt and `env_spans` of the completion masked) and logprobs (1.0 on masks)."""
    tokens = prompt + completion
    masks = [-100] * len(prompt) + list(completion)
    for start, end in env_spans:
        for j in range(start, end):
            masks[len(prompt) + j] = -100
    logprobs = [1.0 if m == -100 else -0.1 * (k + 1) for k, m in enumerate(masks)]
    return {"tokens": tokens, "masks": masks, "logprobs": logprobs}


def group(seqs: list[dict], scores: list[float], **extra: Any) -> dict:
    g = {
        "tokens": [s["tokens"] for s in seqs],
        "masks": [s["masks"] for s in seqs],
        "scores": scores,
        "inference_logprobs": [s["logprobs"] for s in seqs],
    }
    g.update(extra)
    return g


def simple_group(n: int = 4, prompt_len: int = 5, resp_len: int = 3, base: int = 10, **extra: Any) -> dict:
    """n sequences sharing a prompt, with distinct completions and alternating scores."""
    prompt = list(range(base, base + prompt_len))
    seqs = [sequence(prompt, [100 + 10 * i + j for j in range(resp_len)]) for i in range(n)]
    return group(seqs, [float(i % 2) for i in range(n)], **extra)
