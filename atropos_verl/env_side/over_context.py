# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""An environment whose requests do not fit the served context is stopped, with one line saying so.

The servers refuse such a request with HTTP 400 ("maximum context length", "longer than the maximum model length").
atroposlib retries every failed request (3 x 3 attempts with back-off), then drops the item and takes the next, which
is refused the same way: the environment runs for ever and posts nothing, and the reason is buried in its log. Here
each refusal is recognised where the request is sent (`aborts` guards every server path); once requests for
`DISTINCT_REQUESTS` different prompts have been refused in a row, with no request answered in between, the process
ends with `OverContextError` naming the served context and what to change. A single over-long item among fitting ones
is only counted (`over_context` in the status record).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

#: How servers word a refusal for length (vLLM 0.24-0.30, SGLang 0.5).
CONTEXT_REFUSAL = re.compile(
    r"maximum context length|maximum model length|longer than the maximum|exceeds? the (?:model'?s? )?(?:maximum )?"
    r"context|context length (?:of|is)|too long for the model|input.{0,40}longer than",
    re.IGNORECASE,
)
DISTINCT_REQUESTS = 3

_STATE: dict[str, Any] = {"refused": set(), "ever": set(), "status": None}


class OverContextError(SystemExit):
    """Ends the environment process (SystemExit: atroposlib's handlers catch Exception and would keep going)."""


def is_context_refusal(exc: BaseException) -> bool:
    status = getattr(exc, "status_code", None) or getattr(exc, "status", None)
    if status not in (400, 413, None):
        return False
    text = " ".join(str(part) for part in (exc, getattr(exc, "message", ""), getattr(exc, "body", "")))
    return bool(CONTEXT_REFUSAL.search(text))


def _fingerprint(kwargs: dict[str, Any]) -> str:
    payload = kwargs.get("messages") or kwargs.get("prompt") or kwargs.get("input_ids") or ""
    return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def answered() -> None:
    _STATE["refused"].clear()


def _posted_nothing() -> bool:
    status = _STATE["status"]
    return status is not None and not int(status.record.get("groups_posted") or 0)


def refused(exc: BaseException, kwargs: dict[str, Any]) -> None:
    """Count a failed request; raise OverContextError once refusals for length have ended the streak's patience:
    `DISTINCT_REQUESTS` prompts refused in a row, or (an environment whose rollouts make several requests, some of
    which fit) that many refused since start while not one group was posted."""
    if not is_context_refusal(exc):
        return
    fingerprint = _fingerprint(kwargs)
    _STATE["refused"].add(fingerprint)
    _STATE["ever"].add(fingerprint)
    message = str(exc).replace("\n", " ")[:400]
    if (status := _STATE["status"]) is not None:
        status.update({"over_context": 1}, last_error=f"request refused for its length: {message}")
    streak = len(_STATE["refused"]) >= DISTINCT_REQUESTS
    if streak or (len(_STATE["ever"]) >= DISTINCT_REQUESTS and _posted_nothing()):
        how = "in a row" if streak else "and no group was posted"
        raise OverContextError(
            f"the servers refused requests for {len(_STATE['refused' if streak else 'ever'])} different prompts {how} "
            f"as longer than the context they serve ({message}); shorten the environment's prompts or serve a longer "
            "context (actor_rollout_ref.rollout.max_model_len, within the model's max_position_embeddings)"
        )


def install(status: Any = None) -> None:
    _STATE["status"] = status
