# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Aborted generations are sent again on every server path an environment can use, never handed to it to score.

verl pauses its engines around weight syncs; a request caught by an abort comes back as a normal answer (HTTP 200)
with `finish_reason` "abort" (vLLM) or `{"type": "abort"}` (SGLang) and a truncated output. Scoring that output would
train on a cut-off completion. The vLLM token path (`vllm_adapter.VerlVLLMServer`) retries inside its request loop;
this module wraps the other paths of the server classes an environment is routed to: chat and text completions of
`OpenAIServer`, `VLLMServer` and `SGLangServer`, and SGLang's token path (`/generate`). The same wrappers tell
`over_context` of every request answered or refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from atropos_verl.env_side import over_context
from atropos_verl.env_side.patching import wrap_method

logger = logging.getLogger(__name__)


class AbortedGenerationError(RuntimeError):
    """The server kept aborting a request (e.g. a weight sync that did not end) past the retry budget."""


@dataclass
class AbortPolicy:
    #: How many times a request whose reply contains an aborted choice is sent again before giving up.
    max_retries: int = 20
    #: Backoff before retry k (0-based) is min(backoff_s * 2**k, backoff_max_s).
    backoff_s: float = 0.25
    backoff_max_s: float = 5.0
    #: Aborted replies seen (and retried) in this process, on every path.
    retried: int = 0

    def delay(self, attempt: int) -> float:
        return min(self.backoff_s * 2**attempt, self.backoff_max_s)


POLICY = AbortPolicy()


def is_abort(reason: Any) -> bool:
    if isinstance(reason, dict):
        reason = reason.get("type")
    return reason == "abort"


def finish_reasons(result: Any) -> list[Any]:
    """Finish reasons of an OpenAI-style reply (`.choices`), of its raw JSON choices (a list of dicts), or of a
    token-path tuple (its 4th element)."""
    choices = getattr(result, "choices", None)
    if choices is not None:
        return [getattr(c, "finish_reason", None) for c in choices]
    if isinstance(result, list) and all(isinstance(c, dict) for c in result):
        return [c.get("finish_reason") for c in result]
    if isinstance(result, tuple) and len(result) == 4 and isinstance(result[3], list):
        return list(result[3])
    return []


async def retry_aborted(
    send: Callable[[], Awaitable[Any]],
    what: str,
    policy: AbortPolicy = POLICY,
    on_retry: Callable[[], None] | None = None,
) -> Any:
    """Await `send()` until no choice of its reply was aborted (bounded, with backoff); `on_retry` runs before each
    resend (callers that count aborts live)."""
    attempt = 0
    while True:
        result = await send()
        reasons = finish_reasons(result)
        if "error" in reasons:
            raise RuntimeError(f"{what}: the server reported finish_reason 'error': {reasons}")
        if not any(is_abort(r) for r in reasons):
            return result
        if attempt >= policy.max_retries:
            raise AbortedGenerationError(f"{what} aborted {attempt + 1} times in a row ({reasons}); giving up")
        policy.retried += 1
        if on_retry is not None:
            on_retry()
        delay = policy.delay(attempt)
        logger.info("%s was aborted (attempt %d); retrying in %.2fs", what, attempt + 1, delay)
        attempt += 1
        await asyncio.sleep(delay)


def _make(name: str):
    def make(call):
        async def wrapper(self, **kwargs):
            try:
                result = await retry_aborted(lambda: call(self, **dict(kwargs)), f"{type(self).__name__}.{name}")
            except Exception as exc:
                over_context.refused(exc, kwargs)  # too long for the served context, again and again: stop
                raise
            over_context.answered()
            return result

        return wrapper

    return make


def install() -> None:
    from atroposlib.envs.server_handling.openai_server import OpenAIServer
    from atroposlib.envs.server_handling.sglang_server import SGLangServer
    from atroposlib.envs.server_handling.vllm_server import VLLMServer

    for cls in (OpenAIServer, VLLMServer, SGLangServer):
        for name in ("_chat_completion_wrapper", "_completion_wrapper"):
            wrap_method(cls, name, _make(name))
    # VerlVLLMServer retries inside its own token-path request loop (it overrides this method on its class).
    token_path = "_tokens_and_logprobs_completion_wrapper"
    wrap_method(SGLangServer, token_path, _make(token_path))
