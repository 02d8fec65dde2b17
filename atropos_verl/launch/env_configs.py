# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The YAML each environment process is started with, written whenever the trainer publishes (new) endpoints."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from atropos_verl.env_side.env_yaml import write_env_yaml
from atropos_verl.trainer.endpoints import Endpoints

if TYPE_CHECKING:
    from atropos_verl.launch.plan import RunPlan


def env_yaml_path(plan: RunPlan, name: str) -> Path:
    return plan.run_dir / "envs" / f"{name}.yaml"


def write_env_configs(plan: RunPlan, endpoints: Endpoints) -> dict[str, Path]:
    """One YAML per environment process (its settings, one server entry per replica, the run's server key)."""
    return {
        env.name: write_env_yaml(env_yaml_path(plan, env.name), env.env_settings, endpoints, env.spec.server,
                                 api_key=plan.server_key)
        for env in plan.envs
    }
