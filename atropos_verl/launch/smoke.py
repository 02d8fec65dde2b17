# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""`atropos-verl doctor CONFIG --smoke`: two steps of CONFIG's stack with a tiny model, before a long job.

What a config's first minutes would reveal, in minutes and without its model: the install, the engine the config
picks (`backend`), its mode and placement, its device layout (GPUs per node, nodes, tensor parallelism, standalone
pools), LoRA as it is served, the cluster it joins and its server key. The model is the tiny offline Qwen2 and the
environment the builtin addition task, so nothing is downloaded and the result does not depend on the config's
environments (whose own check is a separate matter). After the run, the metrics it wrote are read back for each
mechanism the GPU path depends on: servers up, the drain before each push, the push itself, the policy-version stamp
on the answers, and the steps trained.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from atropos_verl.launch.config import RunConfig
from atropos_verl.launch.plan import compose_trainer_config
from atropos_verl.trainer.serving import apply_serving_defaults

STEPS = 2
#: Settings of the config's verl section that shape the stack, kept for the smoke run (on GPUs only: the CPU platform
#: sets its own device layout).
LAYOUT_KEYS = (
    "trainer.n_gpus_per_node",
    "trainer.nnodes",
    "actor_rollout_ref.rollout.tensor_model_parallel_size",
    "actor_rollout_ref.rollout.gpu_memory_utilization",
    "actor_rollout_ref.rollout.nnodes",
    "actor_rollout_ref.rollout.n_gpus_per_node",
    "actor_rollout_ref.rollout.checkpoint_engine.backend",
)
LORA_KEYS = ("actor_rollout_ref.model.target_modules", "actor_rollout_ref.model.lora.merge")
#: The tiny model's size: 2 attention heads allow tensor parallelism up to 2.
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
        "num_key_value_heads": 2}


def small_step_overrides(groups: int, steps: int, *, max_prompt: int, max_response: int) -> list[str]:
    """The verl settings of a short run on the tiny model, shared by the smoke run and `envs check`: `groups` groups
    of 4 per step (one mini-batch, micro-batches of 4), `steps` steps, nothing saved, console logging."""
    return [
        f"data.train_batch_size={groups}",
        f"data.max_prompt_length={max_prompt}",
        f"data.max_response_length={max_response}",
        "actor_rollout_ref.rollout.n=4",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={groups}",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4",
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=4",
        "actor_rollout_ref.model.enable_gradient_checkpointing=false",
        f"trainer.total_training_steps={steps}",
        "trainer.save_freq=-1",
        "trainer.logger=[console]",
    ]


@dataclass
class Verdict:
    name: str
    ok: bool
    detail: str


def _value(verl: Any, key: str) -> Any:
    value = OmegaConf.select(verl, key, default=None)
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def smoke_config(config: RunConfig, workdir: Path, *, has_accelerator: bool) -> dict[str, Any]:
    """The run config of the smoke run: CONFIG's engine, mode, placement, cluster, key and layout; tiny everything
    else."""
    verl = compose_trainer_config(list(config.verl))
    apply_serving_defaults(verl, list(config.verl))  # LoRA served merged unless the config says otherwise
    ranks = 1
    overrides = [] if has_accelerator else ["trainer.n_gpus_per_node=1", "trainer.nnodes=1"]
    if has_accelerator:
        for key in LAYOUT_KEYS:
            if (value := _value(verl, key)) is not None:
                if key.endswith("tensor_model_parallel_size"):
                    value = min(int(value), TINY["num_attention_heads"])
                overrides.append(f"{key}={value}")
        ranks = int(_value(verl, "trainer.n_gpus_per_node") or 1) * int(_value(verl, "trainer.nnodes") or 1)
    rank = max(int(_value(verl, "actor_rollout_ref.model.lora_rank") or 0),
               int(_value(verl, "actor_rollout_ref.model.lora.rank") or 0))
    if rank:
        overrides.append(f"actor_rollout_ref.model.lora_rank={min(rank, 8)}")
        overrides += [f"{key}={json.dumps(v) if isinstance(v, list) else v}" for key in LORA_KEYS
                      if (v := _value(verl, key)) is not None]
    prompts = max(2, ranks)  # prompts x rollout.n sequences split over the ranks: 4 or 8 per rank, micro-batches of 4
    overrides += [*small_step_overrides(prompts, STEPS, max_prompt=48, max_response=8),
                  "actor_rollout_ref.actor.use_kl_loss=true"]
    return {
        "run_name": f"{config.run_name}-smoke",
        "output_dir": str(workdir),
        "backend": config.backend,
        "mode": config.mode,
        "placement": config.placement,
        "max_staleness": config.max_staleness,
        "ray_address": config.ray_address,
        "server_api_key": config.server_api_key,
        "build_model": {"kind": "tiny", "seed": 0, "size": TINY},
        "environments": [{"env": "addition", "max_batches_offpolicy": 1,
                          "settings": {"eval_size": 16, "ensure_scores_are_not_same": False}}],
        "supervision": {"health_interval": 2, "restart_backoff": 1, "stop_grace": 6, "trainer_restarts": 0},
        "verl": overrides,
    }


def write_smoke_config(config: RunConfig, workdir: Path, *, has_accelerator: bool) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "smoke.yaml"
    path.write_text(yaml.safe_dump(smoke_config(config, workdir, has_accelerator=has_accelerator), sort_keys=False))
    return path


def read_steps(run_dir: Path) -> list[dict[str, Any]]:
    """Every step's metrics as the trainer wrote them (`metrics.jsonl`)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    steps = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        steps.append(record.get("data", record))
    return steps


def verdicts(run_dir: Path, exit_code: int, reason: str, addresses: list[str], *, mode: str) -> list[Verdict]:
    """Each mechanism of the GPU path, judged from the servers the run published and the metrics it wrote."""
    steps = read_steps(run_dir)
    out = [Verdict("run", exit_code == 0, reason or f"exit code {exit_code}"),
           Verdict("servers", bool(addresses), ", ".join(addresses) or "no endpoints were published")]
    drained = [s for s in steps if "sync/in_flight_at_drain" in s]
    aborted = sum(float(s.get("sync/aborted_requests", 0)) for s in steps)
    out.append(Verdict("drain", bool(drained) and aborted == 0,
                       f"{len(drained)} drained pushes, {aborted:.0f} requests aborted" if drained else
                       "no step drained the servers"))
    pushes = [s["timing_s/update_weights"] for s in steps if "timing_s/update_weights" in s]
    out.append(Verdict("push", len(pushes) >= min(len(steps), STEPS) and bool(pushes),
                       f"{len(pushes)} weight pushes, slowest {max(pushes):.2f} s" if pushes else "no weight push"))
    # The first step's groups may predate the first push (no version yet); the last step's come after one.
    served = [s.get("atropos/served_policy_version") for s in steps]
    unversioned = float(steps[-1].get("atropos/lag/sequences_without_version", 0)) if steps else 0.0
    stamped = bool(served) and served[-1] is not None and unversioned == 0
    out.append(Verdict("policy stamp", stamped, f"servers at version {served[-1]}, {unversioned:.0f} sequences of "
                       "the last step without a version" if served else "no step recorded"))
    out.append(Verdict("steps", len(steps) >= STEPS, f"{len(steps)} of {STEPS} steps trained ({mode} mode)"))
    return out
