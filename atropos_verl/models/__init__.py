# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Models the project builds itself (offline, no model hub)."""

from atropos_verl.models.tiny import (
    CHATML_TEMPLATE,
    DEFAULT_SYSTEM_PROMPT,
    SPECIAL_TOKENS,
    build_tiny_model,
    build_tiny_tokenizer,
    count_parameters,
    default_merge_corpus,
)

__all__ = [
    "CHATML_TEMPLATE",
    "DEFAULT_SYSTEM_PROMPT",
    "SPECIAL_TOKENS",
    "build_tiny_model",
    "build_tiny_tokenizer",
    "count_parameters",
    "default_merge_corpus",
]
