# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Supervised warm start for the CPU demo: just enough SFT that GRPO's exact-match reward has signal.

From random init every sampled answer is wrong, so every GRPO group has zero reward variance and zero advantage.
A short SFT run on the env's TRAIN split lifts greedy accuracy into the 12-20% band where RL learns fast. SFT on this
task has a sharp jump (a few % for hundreds of steps, then 10% -> 90% within ~150 steps, at a step that depends on
the init seed), so training stops the first time accuracy on a TRAIN-split dev slice reaches the target, never after a
fixed step count. The held-out pairs are never touched: they stay the demo's BEFORE/AFTER yardstick.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from atropos_verl.demo.greedy import greedy_scores
from atropos_verl.demo.prompts import IGNORE_INDEX, sft_batch_tensors
from atropos_verl.envs.addition import Pair, make_split

logger = logging.getLogger(__name__)

RECORD_NAME = "warm_start.json"


@dataclass
class WarmStartResult:
    """What the run did; also written to `<out_dir>/warm_start.json`."""

    out_dir: str
    steps: int
    dev_accuracy: float
    reached_target: bool
    target_accuracy: float
    seconds: float
    train_seconds: float
    eval_seconds: float
    history: list[tuple[int, float]] = field(default_factory=list)
    settings: dict[str, float | int] = field(default_factory=dict)


def training_pairs(data_seed: int = 0, num_heldout: int = 1000) -> list[Pair]:
    """The env's TRAIN split: every pair the warm start may see (the held-out pairs are excluded by construction)."""
    return make_split(data_seed, num_heldout)[0]


def dev_and_sft_pairs(
    data_seed: int = 0, num_heldout: int = 1000, dev_size: int = 200
) -> tuple[list[Pair], list[Pair]]:
    """(dev, sft): the first `dev_size` TRAIN pairs decide when to stop; SFT trains on the remaining TRAIN pairs.

    Keeping the dev pairs out of SFT makes dev accuracy an estimate of accuracy on unseen pairs (what the held-out
    BEFORE number measures) instead of a memorisation-inflated one. Both are TRAIN pairs, so RL may still use them.
    """
    train = training_pairs(data_seed, num_heldout)
    return train[:dev_size], train[dev_size:]


def sft_examples(
    tokenizer: Any, data_seed: int = 0, num_heldout: int = 1000, dev_size: int = 200
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, labels) of every SFT pair: the only rows the warm start samples batches from."""
    return sft_batch_tensors(tokenizer, dev_and_sft_pairs(data_seed, num_heldout, dev_size)[1])


class _BatchStream:
    """Seeded reshuffle-per-pass index stream, so batch contents depend only on the seed."""

    def __init__(self, size: int, batch_size: int, seed: int):
        self.size, self.batch_size = size, batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.buffer = torch.empty(0, dtype=torch.long)

    def next(self) -> torch.Tensor:
        while len(self.buffer) < self.batch_size:
            self.buffer = torch.cat([self.buffer, torch.randperm(self.size, generator=self.gen)])
        batch, self.buffer = self.buffer[: self.batch_size], self.buffer[self.batch_size :]
        return batch


def warm_start(
    model_dir: str | Path,
    out_dir: str | Path,
    *,
    seed: int = 0,
    data_seed: int = 0,
    num_heldout: int = 1000,
    lr: float = 1e-3,
    batch_size: int = 64,
    warmup_steps: int = 50,
    target_accuracy: float = 0.12,
    dev_size: int = 200,
    eval_every: int = 25,
    max_steps: int = 3000,
    threads: int = 2,
) -> WarmStartResult:
    """SFT `model_dir` on the env's TRAIN split until dev accuracy >= `target_accuracy`; save to `out_dir`.

    Loss is the token mean over the answer tokens and `<|im_end|>` only (the prompt is given, not learned). AdamW
    (betas 0.9/0.98, no weight decay), linear warm-up, grad-norm clip 1.0. Dev accuracy is greedy exact match on the
    first `dev_size` TRAIN pairs, which SFT does not train on (`dev_and_sft_pairs`); it is measured every
    `eval_every` steps. Same seeds and `threads` -> identical saved weights.
    If `max_steps` pass without reaching the target, the last model is saved and `reached_target` is False.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dev_size < 1 or eval_every < 1 or batch_size < 1:
        raise ValueError("dev_size, eval_every and batch_size must be >= 1")
    started = time.perf_counter()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            tokenizer = AutoTokenizer.from_pretrained(model_dir)
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
            dev = dev_and_sft_pairs(data_seed, num_heldout, dev_size)[0]
            inputs, labels = sft_examples(tokenizer, data_seed, num_heldout, dev_size)
            stream = _BatchStream(len(inputs), batch_size, seed)

            optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.0)
            scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda i: min(1.0, (i + 1) / warmup_steps) if warmup_steps > 0 else 1.0
            )
            history: list[tuple[int, float]] = []
            train_s = eval_s = 0.0
            step, accuracy, reached = 0, 0.0, False
            model.train()
            while step < max_steps:
                t0 = time.perf_counter()
                idx = stream.next()
                batch_inputs, batch_labels = inputs[idx], labels[idx]
                logits = model(input_ids=batch_inputs).logits[:, :-1]
                loss = torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.size(-1)), batch_labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                step += 1
                train_s += time.perf_counter() - t0

                if step % eval_every == 0 or step == max_steps:
                    t0 = time.perf_counter()
                    scores = greedy_scores(model, tokenizer, dev)
                    accuracy = sum(scores) / len(scores)
                    eval_s += time.perf_counter() - t0
                    history.append((step, accuracy))
                    logger.info("warm start step %d: loss %.4f, dev accuracy %.3f", step, loss.item(), accuracy)
                    if accuracy >= target_accuracy:
                        reached = True
                        break
            if not reached:
                logger.warning(
                    "warm start stopped at max_steps=%d with dev accuracy %.3f < target %.3f",
                    max_steps,
                    accuracy,
                    target_accuracy,
                )

            out = Path(out_dir)
            out.mkdir(parents=True, exist_ok=True)
            model.save_pretrained(out)
            tokenizer.save_pretrained(out)
    finally:
        torch.set_num_threads(previous_threads)

    result = WarmStartResult(
        out_dir=str(out),
        steps=step,
        dev_accuracy=accuracy,
        reached_target=reached,
        target_accuracy=target_accuracy,
        seconds=time.perf_counter() - started,
        train_seconds=train_s,
        eval_seconds=eval_s,
        history=history,
        settings={
            "seed": seed,
            "data_seed": data_seed,
            "num_heldout": num_heldout,
            "lr": lr,
            "batch_size": batch_size,
            "warmup_steps": warmup_steps,
            "dev_size": dev_size,
            "eval_every": eval_every,
            "max_steps": max_steps,
            "threads": threads,
        },
    )
    (out / RECORD_NAME).write_text(json.dumps(asdict(result), indent=2) + "\n", encoding="utf-8")
    return result
