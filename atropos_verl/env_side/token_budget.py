# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The token budget an environment is given, so that what it posts fits the trainer's response cap.

Atropos environments read `max_token_length` two ways (both common in the Atropos repository):
- `response` (the default): as `max_tokens` of each request. Many then re-tokenize the whole chat
  (`tokenize_for_trainer`), so the trained response is the completion's text plus the chat template's end-of-turn
  tokens: a completion cut at `max_tokens` comes back longer than `max_tokens`. The budget is the response cap
  (`data.max_response_length`) less what the template adds after an assistant message (measured with the
  environment's own tokenizer) and one token of re-tokenization slack.
- `total`: as a budget for prompt and completion together (`max_tokens = max_token_length - len(prompt)`). Its
  `max_token_length` is the prompt cap plus the response budget, so the subtraction leaves at least the response
  budget for any prompt within the cap.
Whatever an environment computes, each training request's `max_tokens` is then clamped to [1, response budget]
(evaluation requests only to at least 1): a negative or zero budget is an HTTP 400 that atroposlib retries, and a
larger one a completion the trainer must refuse. Clamps are counted in the environment's status record.

The launcher passes the caps and the meaning (`EnvironmentSpec.token_budget`) in the environment's process
environment; the budget is set on the environment's config as it is built, before `setup()` reads it.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from atropos_verl.env_side.patching import wrap_method

logger = logging.getLogger(__name__)

RESPONSE_CAP_ENV = "ATROPOS_VERL_RESPONSE_CAP"
PROMPT_CAP_ENV = "ATROPOS_VERL_PROMPT_CAP"
MEANING_ENV = "ATROPOS_VERL_TOKEN_BUDGET"
MEANINGS = ("response", "total")
MAX_TOKEN_KEYS = ("max_tokens", "max_completion_tokens", "max_new_tokens")
#: Re-tokenizing a completion's text may merge differently at its end than the model sampled.
RETOKENIZE_SLACK = 1

_STATE: dict[str, Any] = {"cap": None, "status": None}


def template_tail(tokenizer: Any) -> int:
    """Tokens the chat template puts after an assistant message's text (ChatML: `<|im_end|>` and a newline)."""
    content = "0123456789"
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "1"}, {"role": "assistant",
                                              "content": content}], tokenize=False)
        tail = text[text.rindex(content) + len(content):]
        return len(tokenizer(tail, add_special_tokens=False)["input_ids"]) if tail else 0
    except Exception as exc:  # no chat template: environments of such a model cannot chat either
        logger.warning("could not measure the chat template's end-of-turn tokens (%s); assuming none", exc)
        return 0


def budgets(meaning: str, response_cap: int, prompt_cap: int, tail: int) -> tuple[int, int]:
    """(max_token_length for the environment's config, the largest max_tokens a training request may ask for)."""
    if meaning not in MEANINGS:
        raise ValueError(f"token_budget {meaning!r}: use one of {', '.join(MEANINGS)}")
    per_request = max(1, response_cap - tail - RETOKENIZE_SLACK)
    return (per_request if meaning == "response" else prompt_cap + per_request), per_request


def clamp(kwargs: dict[str, Any]) -> None:
    """Bound the request's max_tokens in place (see the module docstring)."""
    cap = _STATE["cap"]
    if cap is None:
        return
    train = kwargs.get("split", "train") == "train"
    for key in MAX_TOKEN_KEYS:
        asked = kwargs.get(key)
        if not isinstance(asked, int) or isinstance(asked, bool):
            continue
        bounded = max(1, min(asked, cap) if train else asked)
        if bounded != asked:
            kwargs[key] = bounded
            if (status := _STATE["status"]) is not None:
                status.update({"max_tokens_clamped": 1}, last_clamp=f"{key} {asked} -> {bounded}")


def _apply(env: Any) -> None:
    response_cap = os.environ.get(RESPONSE_CAP_ENV)
    if not response_cap or not hasattr(env.config, "max_token_length"):
        return
    meaning = os.environ.get(MEANING_ENV, "response")
    tail = template_tail(env.tokenizer) if getattr(env, "tokenizer", None) is not None else 0
    length, per_request = budgets(meaning, int(response_cap), int(os.environ.get(PROMPT_CAP_ENV) or 0), tail)
    env.config.max_token_length = length
    _STATE["cap"] = per_request
    if (status := _STATE["status"]) is not None:
        status.update(token_budget={"meaning": meaning, "max_token_length": length, "max_tokens_cap": per_request,
                                    "template_tail": tail, "response_cap": int(response_cap)})


def install(status: Any = None) -> None:
    from atroposlib.envs.base import BaseEnv

    _STATE["status"] = status

    def make_init(init):
        def wrapper(self, *args, **kwargs):
            init(self, *args, **kwargs)
            _apply(self)

        return wrapper

    wrap_method(BaseEnv, "__init__", make_init)
