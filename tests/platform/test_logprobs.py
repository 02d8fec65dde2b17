# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""P7: label log-probs in row chunks on CPU, bit-equal to verl's own function, values and gradients."""

from __future__ import annotations

import inspect

import pytest
import torch

from atropos_verl.platform import logprobs


@pytest.fixture(scope="module")
def transformer_impl(plugin_active):
    import verl.workers.engine.fsdp.transformer_impl as module

    return module


def test_p7_upstream_loops_over_rows_without_flash_attn():
    import verl.utils.torch_functional as F

    assert not F.FLAH_ATTN_CROSS_ENTROPY_LOSS_AVAILABLE  # so the engine takes verl's torch fallback
    assert "for logit in logits" in inspect.getsource(F.logprobs_from_logits_v2)


def test_p7_engine_uses_the_chunked_function(transformer_impl):
    import verl.utils.torch_functional as F

    assert transformer_impl.logprobs_from_logits.__wrapped__ is F.logprobs_from_logits
    logprobs.use_chunked_logprobs(transformer_impl)  # idempotent: not wrapped twice
    assert transformer_impl.logprobs_from_logits.__wrapped__ is F.logprobs_from_logits


@pytest.mark.parametrize(("shape", "vocab", "dtype", "chunk_bytes"), [
    ((1000,), 320, torch.float32, logprobs.CHUNK_BYTES),  # the engine's unpadded rows: one chunk
    ((1000,), 320, torch.float32, 320 * 4 * 7),  # 7 rows a chunk, the last one short
    ((3, 50), 1000, torch.float64, 1000 * 8 * 16),  # (batch, seq, vocab) logits
])
def test_p7_values_and_gradients_equal_verls(plugin_active, monkeypatch, shape, vocab, dtype, chunk_bytes):
    import verl.utils.torch_functional as F

    monkeypatch.setattr(logprobs, "CHUNK_BYTES", chunk_bytes)
    gen = torch.Generator().manual_seed(sum(shape) + vocab)
    labels = torch.randint(0, vocab, shape, generator=gen)
    results = []
    for fn in (F.logprobs_from_logits, logprobs.chunked_logprobs(F.logprobs_from_logits)):
        logits = (torch.randn(*shape, vocab, generator=torch.Generator().manual_seed(7), dtype=dtype) * 4)
        logits.requires_grad_(True)
        out = fn(logits, labels)
        (out * torch.linspace(-1, 1, out.numel(), dtype=dtype).reshape(shape)).sum().backward()
        results.append((out.detach(), logits.grad))
    (expected, expected_grad), (got, got_grad) = results
    assert got.shape == expected.shape == labels.shape
    assert torch.equal(got, expected) and torch.equal(got_grad, expected_grad)


def test_p7_other_dtypes_keep_verls_function(plugin_active):
    calls = []

    def original(logits, labels, **kwargs):
        calls.append(logits.dtype)
        return torch.zeros(labels.shape)

    chunked = logprobs.chunked_logprobs(original)
    chunked(torch.zeros(4, 8, dtype=torch.bfloat16), torch.zeros(4, dtype=torch.int64), inplace_backward=False)
    assert calls == [torch.bfloat16]
