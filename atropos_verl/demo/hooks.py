# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The CPU demo's two hooks into a run (`hooks:` in configs/cpu_demo.yaml, `atropos_verl.launch.hooks`).

- `prepare_model`: the supervised warm start of the freshly built tiny model (GRPO needs a model that is sometimes
  right), cached by the launcher with the model.
- `after_run`: held-out accuracy before and after training, its plot and the `BEFORE -> AFTER` line. BEFORE is the
  model the run started from, AFTER the trainer's last HF checkpoint (the run config adds `hf_model` to the actor's
  checkpoint contents), both measured the same way: greedy, the addition environment's prompt, split and scoring.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path
from typing import Any


def prepare_model(built_dir: Path, out_dir: Path, *, target_accuracy: float = 0.14, seed: int = 0,
                  data_seed: int = 0, max_steps: int = 3000) -> dict[str, Any]:
    """Warm-start `built_dir` into `out_dir`; `data_seed` must be the environment's, so held-out pairs stay unseen."""
    from atropos_verl.demo.warm_start import warm_start

    result = warm_start(built_dir, out_dir, seed=seed, data_seed=data_seed, target_accuracy=target_accuracy,
                        max_steps=max_steps)
    return asdict(result)


def final_hf_checkpoint(run_dir: Path) -> Path | None:
    """`checkpoints/global_step_N/actor/huggingface` of the highest N that holds weights."""
    found = []
    for path in (run_dir / "checkpoints").glob("global_step_*/actor/huggingface"):
        match = re.search(r"global_step_(\d+)", str(path))
        if match and any(path.glob("*.safetensors")):
            found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


def after_run(outcome: Any, *, items: int = 1000, data_seed: int = 0) -> str:
    """Score the starting model and the last checkpoint on `items` held-out pairs; write the report; its line."""
    from atropos_verl.demo.heldout import heldout_accuracy
    from atropos_verl.demo.report import write_report

    checkpoint = final_hf_checkpoint(outcome.run_dir)
    if checkpoint is None:
        raise FileNotFoundError(
            f"no HF checkpoint under {outcome.run_dir / 'checkpoints'}; the demo needs trainer.save_freq > 0 and "
            "actor_rollout_ref.actor.checkpoint.save_contents with hf_model"
        )
    before = heldout_accuracy(outcome.model_path, n=items, data_seed=data_seed)
    after = heldout_accuracy(checkpoint, n=items, data_seed=data_seed, tokenizer_dir=outcome.model_path)
    return write_report(outcome.run_dir, before=before, after=after, timings=outcome.timings, heldout_items=items)
