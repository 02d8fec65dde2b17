# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""verl recipe entry point: GRPO on the groups Atropos environments post to the trajectory API.

    python -m recipe.atropos.main_atropos atropos.api_url=http://127.0.0.1:8000 actor_rollout_ref.model.path=... \
        [any verl override]

The trainer is `atropos_verl.trainer.ray_trainer.AtroposRayTrainer`, a `RayPPOTrainer` subclass whose batches come
from the API instead of a dataloader; everything else (workers, rollout replicas, checkpoint engine, checkpoints) is
verl's. `atropos-verl run CONFIG --trainer-module recipe.atropos.main_atropos` starts the API, this entry point and
the environments together (run_cpu_tiny.sh).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="config", config_name="atropos_recipe", version_base=None)
def main(config: DictConfig) -> None:
    from atropos_verl.trainer.main import run

    run(config)


if __name__ == "__main__":
    main()
