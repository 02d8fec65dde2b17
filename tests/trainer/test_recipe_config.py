# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The verl recipe's config (recipe/atropos/config/) composes to exactly the trainer config the package composes."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

RECIPE_CONFIG = Path(__file__).resolve().parents[2] / "recipe" / "atropos" / "config"
OVERRIDES = ["data.train_batch_size=4", "atropos.poll_timeout=12"]


def _compose(init, name: str) -> dict:
    GlobalHydra.instance().clear()
    with init():
        return OmegaConf.to_container(compose(config_name=name, overrides=OVERRIDES))


def test_recipe_config_equals_the_package_config():
    package = _compose(lambda: initialize_config_module("atropos_verl.trainer.config", version_base=None),
                       "atropos_trainer")
    recipe = _compose(lambda: initialize_config_dir(str(RECIPE_CONFIG), version_base=None), "atropos_recipe")
    assert recipe == package
    assert recipe["atropos"]["poll_timeout"] == 12 and recipe["algorithm"]["adv_estimator"] == "grpo"
    assert recipe["data"]["train_batch_size"] == 4 and "actor_rollout_ref" in recipe
