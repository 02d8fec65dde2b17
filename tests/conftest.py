# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Suite-wide settings: no hub access exists here, so fail fast instead of waiting on DNS for every lookup."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
