# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Token ids of the addition environment's prompts and answers, built the way the environment builds them.

The prompt is the env's own `build_messages` through the tokenizer's chat template with the generation prompt, as
`ManagedServer` sends it; the answer is the decimal sum followed by `<|im_end|>`, which is what `score_completion`
accepts. Keeping this in one place makes the warm start and the evaluation see exactly the env's task.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from atropos_verl.envs.addition import END_OF_TURN, AdditionEnvConfig, Pair, build_messages

IGNORE_INDEX = -100


def env_max_new_tokens() -> int:
    """The env's generation budget (its config default), so evaluation cannot drift from the env's scoring."""
    return int(AdditionEnvConfig.model_fields["max_new_tokens"].default)


def end_of_turn_id(tokenizer: Any) -> int:
    return int(tokenizer.convert_tokens_to_ids(END_OF_TURN))


def prompt_ids(tokenizer: Any, pair: Pair) -> list[int]:
    text = tokenizer.apply_chat_template(build_messages(*pair), add_generation_prompt=True, tokenize=False)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def answer_ids(tokenizer: Any, pair: Pair) -> list[int]:
    """The target completion: the sum's digits, then the end-of-turn token."""
    a, b = pair
    return [*tokenizer(str(a + b), add_special_tokens=False)["input_ids"], end_of_turn_id(tokenizer)]


def sft_batch_tensors(tokenizer: Any, pairs: Sequence[Pair]) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, labels) for every pair, right-padded to one length; labels are -100 except on the answer.

    Right padding needs no attention mask: the model is causal, so pad positions never influence the answer tokens,
    and their labels are ignored.
    """
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_of_turn_id(tokenizer)
    rows = [(prompt_ids(tokenizer, p), answer_ids(tokenizer, p)) for p in pairs]
    width = max(len(p) + len(a) for p, a in rows)
    inputs = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for i, (prompt, answer) in enumerate(rows):
        seq = prompt + answer
        inputs[i, : len(seq)] = torch.tensor(seq)
        labels[i, len(prompt) : len(seq)] = torch.tensor(answer)
    return inputs, labels
