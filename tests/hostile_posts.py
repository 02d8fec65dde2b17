# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""What a hostile (or merely broken) environment posts to the trajectory API: one malformed variant per rule, plus
oversized and gzip-bomb bodies. Shared by the gate's own test and the live-run test."""

from __future__ import annotations

import copy
import gzip
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tests.atropos_groups import group, sequence


@dataclass
class Post:
    """One request: a JSON payload (allow_nan: NaN/inf literals, as Python's json writes them) or raw bytes."""

    name: str
    path: str = "/scored_data"
    payload: Any = None
    raw: bytes | None = None
    headers: dict[str, str] | None = None

    def send(self, client: httpx.Client) -> httpx.Response:
        body = self.raw if self.raw is not None else json.dumps(self.payload).encode()
        headers = {"content-type": "application/json", **(self.headers or {})}
        return client.post(self.path, content=body, headers=headers)


def good_group(k: int, n: int = 4, *, tag: int = 3, env_id: int | None = None) -> dict:
    """A valid group whose prompt [tag, k, k+1, k+2] identifies it in the batch trace (ids stay under 64)."""
    prompt = [tag, 10 + k % 40, 11 + k % 40, 12 + k % 40]
    seqs = [sequence(prompt, [20 + i, 30 + i]) for i in range(n)]
    return group(seqs, [float(i % 2) for i in range(n)], generation_params={"temperature": 1.0}, env_id=env_id)


def _edit(fn: Callable[[dict], Any], n: int = 4) -> dict:
    g = good_group(0, n, tag=5)
    fn(g)
    return g


def _set(path: str, value: Any) -> Callable[[dict], None]:
    keys = path.split(".")

    def apply(g: dict) -> None:
        target: Any = g
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        last = keys[-1]
        target[int(last) if isinstance(target, list) else last] = value

    return apply


def malformed_posts(vocab_size: int, max_prompt: int, max_response: int, max_body: int, max_inflated: int,
                    registered_env_id: int | None = None) -> list[Post]:
    """Every post here must be refused (4xx) or quarantined; none may be trained on or break a batch."""
    nan, inf = math.nan, math.inf
    zeros = [[0.0] * 6 for _ in range(4)]
    groups: dict[str, dict | list] = {
        "score_nan": _edit(_set("scores.0", nan)),
        "score_inf": _edit(_set("scores.1", -inf)),
        "score_overflows_float32": _edit(_set("scores.0", 1e39)),
        "score_huge": _edit(_set("scores.0", 1e12)),
        "score_string": _edit(_set("scores.0", "1.0")),
        "logprob_nan_trained": _edit(_set("inference_logprobs.0.5", nan)),
        "logprob_nan_prompt": _edit(_set("inference_logprobs.0.0", nan)),
        "logprob_positive": _edit(_set("inference_logprobs.0.5", 5.0)),
        "logprob_far_below": _edit(_set("inference_logprobs.1.4", -1e9)),
        "advantage_nan": _edit(_set("advantages", [[0.0, 0.0, 0.0, 0.0, nan, 0.0]] + zeros[1:])),
        "advantage_inf": _edit(_set("advantages", [[0.0, 0.0, 0.0, 0.0, 0.0, inf]] + zeros[1:])),
        "advantage_overflows_float32": _edit(_set("advantages", [[0.0] * 4 + [1e39, 0.0]] + zeros[1:])),
        "ref_logprobs_nan": _edit(_set("ref_logprobs", [[nan] * 6] * 4)),
        "temperature_tiny": _edit(_set("generation_params", {"temperature": 1e-30})),
        "temperature_negative": _edit(_set("group_overrides", {"temperature": -2.0})),
        "temperature_nan": _edit(_set("generation_params", {"temperature": nan})),
        "token_beyond_vocab": _edit(lambda g: (g["tokens"][0].__setitem__(5, vocab_size),
                                               g["masks"][0].__setitem__(5, vocab_size))),
        "token_negative": _edit(_set("tokens.0.1", -3)),
        "token_float": _edit(_set("tokens.0.1", 1.5)),
        "token_huge_int": _edit(_set("tokens.0.1", 10**30)),
        "mask_length": _edit(lambda g: g["masks"][1].pop()),
        "masks_count": _edit(lambda g: g["masks"].pop()),
        "scores_count": _edit(lambda g: g["scores"].pop()),
        "empty_group": {"tokens": [], "masks": [], "scores": []},
        "no_trainable": _edit(_set("masks.0", [-100] * 6)),
        "no_prompt": _edit(lambda g: g["masks"].__setitem__(0, list(g["tokens"][0]))),
        "prompt_too_long": group([sequence([7] * (max_prompt + 1), [20, 21])] * 4, [0.0, 1.0, 0.0, 1.0]),
        "response_too_long": group([sequence([7, 8], [20] * (max_response + 1))] * 4, [0.0, 1.0, 0.0, 1.0]),
        "unpackable_size_3": good_group(1, 3, tag=5),
        "larger_than_batch": good_group(2, 64, tag=5),
        "singleton": good_group(3, 1, tag=5),
        "images": _edit(_set("images", ["data:image/png;base64,AAAA"] * 4)),
        "distillation": _edit(lambda g: g.update(distill_token_ids=[[[1]] * 6] * 4,
                                                  distill_logprobs=[[[-0.1]] * 6] * 4)),
        "env_id_string": _edit(_set("env_id", "zero")),
        "env_id_unknown": _edit(_set("env_id", 999)),
        "not_a_group": ["tokens"],
    }
    if registered_env_id is not None:
        groups["group_larger_than_env_group_size"] = _edit(_set("env_id", registered_env_id), n=8)
    posts = [Post(name, payload=payload) for name, payload in groups.items()]
    posts.append(Post("list_with_one_bad", "/scored_data_list", payload=[copy.deepcopy(groups["score_nan"])]))
    posts.append(Post("not_json", raw=b"{tokens: [[1, 2"))
    posts.append(Post("oversized", raw=b"[" + b"0," * (max_body // 2) + b"0]"))
    bomb = gzip.compress(b" " * (max_inflated + 1024), compresslevel=9)
    posts.append(Post("gzip_bomb", raw=bomb, headers={"content-encoding": "gzip"}))
    posts.append(Post("gzip_invalid", raw=b"\x1f\x8bnot really gzip", headers={"content-encoding": "gzip"}))
    return posts
