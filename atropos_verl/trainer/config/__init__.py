# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Hydra config of the Atropos trainer (verl ppo_trainer + `atropos:`)."""
