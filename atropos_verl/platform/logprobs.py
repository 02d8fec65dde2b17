# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Label log-probs in row chunks on CPU (P7), for verl's FSDP engine.

Without flash-attn's cross-entropy (a GPU kernel) verl computes label log-probs with `logprobs_from_logits_v2`
(`verl/utils/torch_functional.py:194-199`), which calls `logsumexp` once per row to bound peak memory. The engine
passes the unpadded logits of a whole micro-batch (`transformer_impl.py:1522`: one row per token), so a CPU update
makes thousands of tiny calls forward and as many nodes backward. Here rows go in chunks of at most `CHUNK_BYTES` of
logits: the same kernel on the same rows (bit-equal values and gradients, `tests/platform/test_logprobs.py`), peak
memory still bounded. Other dtypes keep verl's function (its bf16 branch is verl's numerical choice).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import torch

from atropos_verl.import_hooks import when_imported

TARGET = "verl.workers.engine.fsdp.transformer_impl"
CHUNK_BYTES = 64 << 20


def chunked_logprobs(original: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """verl's `logprobs_from_logits`, computing float32/float64 logits' rows in chunks instead of one by one."""

    def logprobs_from_logits(logits: torch.Tensor, labels: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if logits.dtype not in (torch.float32, torch.float64) or logits.dim() < 2 or logits.device.type != "cpu":
            return original(logits, labels, *args, **kwargs)
        vocab = logits.shape[-1]
        rows = logits.reshape(-1, vocab)
        chosen = torch.gather(rows, dim=-1, index=labels.reshape(-1, 1)).squeeze(-1)
        per_chunk = max(1, CHUNK_BYTES // (vocab * logits.element_size()))
        normalizer = torch.cat([torch.logsumexp(chunk, dim=-1) for chunk in rows.split(per_chunk)])
        return (chosen - normalizer).reshape(labels.shape)

    logprobs_from_logits.__wrapped__ = original  # type: ignore[attr-defined]
    return logprobs_from_logits


def use_chunked_logprobs(module: ModuleType) -> None:
    """P7: rebind the engine module's `logprobs_from_logits` (idempotent)."""
    current = module.logprobs_from_logits
    if getattr(current, "__wrapped__", None) is None:
        module.logprobs_from_logits = chunked_logprobs(current)


def install() -> None:
    when_imported(TARGET, use_chunked_logprobs)
