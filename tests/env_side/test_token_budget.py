# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The budget an environment is given fits its posts within the trainer's response cap, whichever way it reads
`max_token_length`, and no request asks for fewer than 1 token."""

from __future__ import annotations

import pytest

from atropos_verl.env_side import token_budget
from atropos_verl.env_side.token_budget import budgets, clamp, template_tail
from atropos_verl.models.tiny import build_tiny_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    from atropos_verl.env_side import compat

    compat.install()  # as in every environment process: chat templates give atroposlib lists of ids
    return build_tiny_tokenizer()


def _trained_length(tokenizer, completion_ids: list[int]) -> int:
    """What a re-tokenizing environment trains on for a completion: atroposlib's `tokenize_for_trainer` over the chat
    with the completion's text as the assistant turn."""
    from atroposlib.utils.tokenize_for_trainer import tokenize_for_trainer

    chat = [{"role": "user", "content": "12+34="},
            {"role": "assistant", "content": tokenizer.decode(completion_ids)}]
    done = tokenize_for_trainer(tokenizer, chat, finish_reason="length")
    return sum(m != -100 for m in done["masks"])


@pytest.mark.parametrize("response_cap", [8, 16, 64])
def test_a_cut_completion_re_tokenized_fits_the_cap_with_the_budget_and_overruns_without(tokenizer, response_cap):
    tail = template_tail(tokenizer)
    assert tail >= 1  # ChatML closes the assistant turn with <|im_end|> and a newline
    _, per_request = budgets("response", response_cap, 48, tail)
    digit = tokenizer("7", add_special_tokens=False)["input_ids"]
    assert _trained_length(tokenizer, digit) == 1 + tail  # the completion, then the template's end of turn
    assert _trained_length(tokenizer, digit * per_request) <= response_cap
    assert _trained_length(tokenizer, digit * response_cap) > response_cap  # the budget before: max_tokens = cap


def test_budgets_for_each_reading_of_max_token_length():
    assert budgets("response", 64, 48, tail=2) == (61, 61)
    assert budgets("total", 64, 48, tail=2) == (48 + 61, 61)  # minus any prompt within the cap leaves >= 61
    assert budgets("response", 2, 48, tail=2) == (1, 1)  # never below one token
    with pytest.raises(ValueError, match="token_budget 'tokens'"):
        budgets("tokens", 64, 48, tail=2)


def test_requests_are_bounded_to_the_budget_and_never_below_one(monkeypatch):
    monkeypatch.setitem(token_budget._STATE, "cap", 6)
    monkeypatch.setitem(token_budget._STATE, "status", None)
    for asked, expected in ((64, 6), (6, 6), (3, 3), (0, 1), (-20, 1)):
        kwargs = {"max_tokens": asked}
        clamp(kwargs)
        assert kwargs["max_tokens"] == expected
    evaluation = {"max_tokens": 500, "split": "eval"}
    clamp(evaluation)
    assert evaluation["max_tokens"] == 500  # evaluation answers are not trained: only the floor applies
    negative_eval = {"max_completion_tokens": -3, "split": "eval"}
    clamp(negative_eval)
    assert negative_eval["max_completion_tokens"] == 1
    untouched = {"temperature": 1.0}
    clamp(untouched)
    assert untouched == {"temperature": 1.0}


def test_requests_over_the_served_context_stop_the_environment_after_three_prompts(monkeypatch):
    """vLLM's own wording of the refusal (openai SDK: BadRequestError, status 400)."""
    import httpx
    import openai

    from atropos_verl.env_side import over_context

    def refusal(prompt: str) -> openai.BadRequestError:
        body = "This model's maximum context length is 128 tokens. However, you requested 4 output tokens and ..."
        request = httpx.Request("POST", "http://127.0.0.1:1/v1/chat/completions")
        return openai.BadRequestError(f"Error code: 400 - {body}", response=httpx.Response(400, request=request),
                                      body=None)

    monkeypatch.setitem(over_context._STATE, "refused", set())
    monkeypatch.setitem(over_context._STATE, "ever", set())
    monkeypatch.setitem(over_context._STATE, "status", None)
    over_context.refused(RuntimeError("connection reset"), {"prompt": "a"})  # not a length refusal: not counted
    for prompt in ("a", "a", "b"):  # the same prompt retried counts once
        over_context.refused(refusal(prompt), {"prompt": prompt})
    over_context.answered()  # a request that fits ends the streak
    over_context.refused(refusal("c"), {"prompt": "c"})
    over_context.refused(refusal("d"), {"prompt": "d"})
    with pytest.raises(over_context.OverContextError, match="3 different prompts in a row as longer than the "
                                                            "context they serve.*max_model_len"):
        over_context.refused(refusal("e"), {"prompt": "e"})
