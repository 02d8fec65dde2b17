# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""A small model (builds in well under a second, trains at ~10 ms/step) and one warm start of it, shared by the demo
tests so the suite takes seconds rather than the minute the recipe model needs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from atropos_verl.demo.warm_start import WarmStartResult, warm_start
from atropos_verl.models.tiny import build_tiny_model

SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)
# lr 3e-3 gets the small model past a few % dev accuracy within a few hundred steps.
SMALL_LR = 3e-3
TARGET = 0.06


# One thread: results are bit-for-bit reproducible per thread count anyway, and a single thread does not stall on
# OpenMP barriers when the machine is oversubscribed (a training run next to the test suite).
THREADS = 1


@pytest.fixture(autouse=True)
def _single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def small_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("demo") / "small", seed=0, **SMALL)


@pytest.fixture(scope="session")
def small_warm(small_model, tmp_path_factory) -> WarmStartResult:
    """Warm start stopped by a low target the small model reaches after a few evaluations."""
    return warm_start(
        small_model,
        tmp_path_factory.mktemp("demo") / "warm",
        lr=SMALL_LR,
        target_accuracy=TARGET,
        eval_every=25,
        max_steps=2000,  # the step the target is reached at depends on the CPU kernels (1175 on an AVX2-only host)
        threads=THREADS,
    )
