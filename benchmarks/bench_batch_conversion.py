# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Prints the time to turn a /batch body into a verl DataProto: 1,024 sequences x 2,048 tokens by default.

Compares `groups_to_dataproto` with a straightforward per-token Python conversion of the same batch, and msgspec with
the standard library at decoding the JSON body.  Usage: python benchmarks/bench_batch_conversion.py [--seqs N]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import msgspec
import torch

from atropos_verl.trainer.batch import groups_to_dataproto


def make_groups(seqs: int, tokens: int, group_size: int, prompt: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    groups = []
    for _ in range(seqs // group_size):
        p = [rng.randrange(1000, 100000) for _ in range(prompt)]
        g = {"tokens": [], "masks": [], "scores": [], "inference_logprobs": [], "overrides": [], "env_id": 0}
        for _ in range(group_size):
            resp = [rng.randrange(1000, 100000) for _ in range(tokens - prompt)]
            g["tokens"].append(p + resp)
            g["masks"].append([-100] * prompt + resp)
            g["inference_logprobs"].append([1.0] * prompt + [-rng.random() for _ in resp])
            g["scores"].append(rng.random())
            g["overrides"].append({})
        groups.append(g)
    return groups


def naive_convert(groups: list[dict], pad_token_id: int, **_caps: int) -> dict[str, torch.Tensor]:
    """The per-token loop a first implementation would write (same outputs, no validation)."""
    rows = []
    for g in groups:
        for toks, masks, lps, score in zip(g["tokens"], g["masks"], g["inference_logprobs"], g["scores"], strict=True):
            start = next(i for i, m in enumerate(masks) if m != -100)
            rows.append((toks[:start], toks[start:], [int(m != -100) for m in masks[start:]], lps[start:], score))
    width_p = max(len(r[0]) for r in rows)
    width_r = max(len(r[1]) for r in rows)
    prompts, responses, rmask, attn, lp, scores = [], [], [], [], [], []
    for p, r, m, lps, score in rows:
        prompts.append([pad_token_id] * (width_p - len(p)) + p)
        responses.append(r + [pad_token_id] * (width_r - len(r)))
        rmask.append(m + [0] * (width_r - len(m)))
        attn.append([0] * (width_p - len(p)) + [1] * len(p) + [1] * len(r) + [0] * (width_r - len(r)))
        lp.append([x if k else 0.0 for x, k in zip(lps, m, strict=True)] + [0.0] * (width_r - len(r)))
        s = [0.0] * width_r
        s[max(i for i, k in enumerate(m) if k)] = score
        scores.append(s)
    out = {
        "prompts": torch.tensor(prompts),
        "responses": torch.tensor(responses),
        "response_mask": torch.tensor(rmask),
        "attention_mask": torch.tensor(attn),
        "rollout_log_probs": torch.tensor(lp),
        "token_level_scores": torch.tensor(scores),
    }
    out["input_ids"] = torch.cat([out["prompts"], out["responses"]], dim=1)
    out["position_ids"] = torch.clip(torch.cumsum(out["attention_mask"], dim=1) - 1, min=0)
    return out


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seqs", type=int, default=1024)
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)

    groups = make_groups(args.seqs, args.tokens, args.group_size, args.prompt)
    body = json.dumps({"batch": groups}).encode()
    kw = {"pad_token_id": 0, "max_prompt_length": args.prompt, "max_response_length": args.tokens - args.prompt}
    print(f"batch: {args.seqs} sequences x {args.tokens} tokens, /batch body {len(body) / 1e6:.1f} MB of JSON")

    dec = msgspec.json.Decoder()
    t_std, _ = best_of(lambda: json.loads(body), args.repeats)
    t_msgspec, _ = best_of(lambda: dec.decode(body), args.repeats)
    print(f"decode  json (stdlib): {t_std:.3f} s   msgspec: {t_msgspec:.3f} s")

    fast, fast_med = best_of(lambda: groups_to_dataproto(groups, **kw), args.repeats)
    naive, _ = best_of(lambda: naive_convert(groups, **kw), max(1, args.repeats // 2))
    ours = groups_to_dataproto(groups, **kw).data.batch
    ref = naive_convert(groups, **kw)
    for key, tensor in ref.items():  # same result, or the comparison means nothing
        assert torch.equal(ours[key][:, -tensor.shape[1]:] if key != "prompts" else ours[key], tensor), key
    print(f"convert groups_to_dataproto: {fast:.3f} s (median {fast_med:.3f} s)   per-token Python: {naive:.3f} s")
    print(f"speed-up: {naive / fast:.1f}x")


if __name__ == "__main__":
    main()
