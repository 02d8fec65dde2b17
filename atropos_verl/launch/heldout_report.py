# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The end-of-run report of a run with `report:`: held-out accuracy before and after training, and its plot.

BEFORE is the model the run started from, AFTER the trainer's last HF checkpoint, both measured the same way (greedy,
the addition environment's prompt, split and scoring, on `report.items` held-out pairs), so the gain is the training's.
"""

from __future__ import annotations

import re
from pathlib import Path

from atropos_verl.launch.config import RunConfig

# Added to the trainer's overrides for runs with a report: the last checkpoint must include HF weights.
HF_CHECKPOINT_OVERRIDE = "actor_rollout_ref.actor.checkpoint.save_contents=[model,optimizer,extra,hf_model]"


def final_hf_checkpoint(run_dir: Path) -> Path | None:
    """`checkpoints/global_step_N/actor/huggingface` of the highest N that holds weights."""
    found = []
    for path in (run_dir / "checkpoints").glob("global_step_*/actor/huggingface"):
        match = re.search(r"global_step_(\d+)", str(path))
        if match and any(path.glob("*.safetensors")):
            found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


def heldout_report(config: RunConfig, run_dir: Path, model_path: str, timings: dict[str, float]) -> str:
    from atropos_verl.demo.heldout import heldout_accuracy
    from atropos_verl.demo.report import write_report

    assert config.report is not None
    items, seed = config.report.items, config.report.data_seed
    checkpoint = final_hf_checkpoint(run_dir)
    if checkpoint is None:
        raise FileNotFoundError(f"no HF checkpoint under {run_dir / 'checkpoints'}; is trainer.save_freq > 0?")
    before = heldout_accuracy(model_path, n=items, data_seed=seed)
    after = heldout_accuracy(checkpoint, n=items, data_seed=seed, tokenizer_dir=model_path)
    return write_report(run_dir, before=before, after=after, timings=timings, heldout_items=items)
