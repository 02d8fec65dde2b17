# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The one error type for configuration the run cannot use, shared by the launcher's run config and the trainer's
composed verl config, so callers catch one class whichever layer found the problem."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config that cannot work; the message names the file or key and what to change."""
