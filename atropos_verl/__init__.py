# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Train with verl's GRPO on rollouts produced by Atropos environments."""

__version__ = "0.1.0"
