# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Build verl's real RayPPOTrainer on the CPU platform with a tiny model; shared by the e2e tests and the benchmark.

Wiring follows verl's legacy task runner (`verl/trainer/main_ppo_v0.py`), with the CPU values coming from
`atropos_verl.platform.defaults.cpu_overrides` rather than typed here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

PROMPT_LEN = 32
RESPONSE_LEN = 32


def verl_config_dir() -> str:
    import verl.trainer.config as cfg_pkg

    return str(Path(cfg_pkg.__file__).parent)


def build_model(out_dir: Path) -> Path:
    from atropos_verl.models.tiny import build_tiny_model

    return build_tiny_model(out_dir, seed=0, max_position_embeddings=256, tie_word_embeddings=False)


def run_overrides(model_dir: Path, *, n_ranks: int = 1, lr: float = 1e-2) -> list[str]:
    """What a run must say about itself (model, sizes, algorithm); nothing CPU-specific."""
    micro = 4
    return [
        f"actor_rollout_ref.model.path={model_dir}",
        "actor_rollout_ref.rollout.name=vllm",
        "actor_rollout_ref.rollout.n=4",
        "actor_rollout_ref.rollout.max_model_len=256",
        "actor_rollout_ref.rollout.max_num_batched_tokens=512",
        "actor_rollout_ref.rollout.max_num_seqs=16",
        "actor_rollout_ref.rollout.prompt_length=32",
        "actor_rollout_ref.rollout.response_length=32",
        "actor_rollout_ref.actor.ppo_mini_batch_size=2",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={micro}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={micro}",
        f"actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu={micro}",
        f"actor_rollout_ref.actor.optim.lr={lr}",
        "actor_rollout_ref.actor.use_kl_loss=true",
        "actor_rollout_ref.actor.kl_loss_type=low_var_kl",
        "actor_rollout_ref.actor.kl_loss_coef=0.1",
        "actor_rollout_ref.actor.entropy_coeff=0",
        "algorithm.adv_estimator=grpo",
        "algorithm.use_kl_in_reward=false",
        "data.train_batch_size=2",
        "data.max_prompt_length=32",
        "data.max_response_length=32",
        "data.dataloader_num_workers=0",
        "trainer.nnodes=1",
        f"trainer.n_gpus_per_node={n_ranks}",
        "trainer.logger=[console]",
        "trainer.val_before_train=false",
        "trainer.total_training_steps=1000",
        "critic.enable=false",
    ]


def compose_config(user_overrides: Sequence[str]):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from atropos_verl.platform.defaults import cpu_overrides

    with initialize_config_dir(config_dir=verl_config_dir(), version_base=None):
        cfg = compose(config_name="ppo_trainer", overrides=cpu_overrides(user_overrides) + list(user_overrides))
    OmegaConf.resolve(cfg)
    return cfg


class _PromptDataset(torch.utils.data.Dataset):
    """Two chat prompts: verl's trainer requires a dataloader even when batches are built by hand."""

    def __init__(self, tokenizer) -> None:
        self.items = []
        for text in ("12+34=", "7+8="):
            chat = tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
            )
            ids = torch.tensor(tokenizer.encode(chat, add_special_tokens=False)[-PROMPT_LEN:])
            self.items.append(
                {"input_ids": ids, "attention_mask": torch.ones_like(ids), "position_ids": torch.arange(len(ids))}
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return dict(self.items[i])


def build_trainer(config):
    """Construct verl's RayPPOTrainer exactly as its legacy task runner does (without `fit`)."""
    from torch.utils.data import SequentialSampler
    from verl.trainer.main_ppo_v0 import BaseTaskRunner
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass, validate_config
    from verl.utils.dataset.rl_dataset import collate_fn

    runner = BaseTaskRunner()
    _, wg_cls = runner.add_actor_rollout_worker(config)
    runner.add_reward_model_resource_pool(config)
    validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    model_config = omega_conf_to_dataclass(config.actor_rollout_ref.model)
    tokenizer = model_config.tokenizer
    dataset = _PromptDataset(tokenizer)
    trainer = RayPPOTrainer(
        config=config,
        tokenizer=tokenizer,
        processor=None,
        role_worker_mapping=runner.role_worker_mapping,
        resource_pool_manager=runner.init_resource_pool_mgr(config),
        ray_worker_group_cls=wg_cls,
        train_dataset=dataset,
        val_dataset=dataset,
        collate_fn=collate_fn,
        train_sampler=SequentialSampler(dataset),
    )
    return trainer, tokenizer


def make_batch(tokenizer, *, n_groups: int = 2, group_size: int = 4, seed: int = 0):
    """Hand-built GRPO batch: left-padded prompts, right-padded responses, one scalar score per sequence."""
    import numpy as np
    from verl import DataProto

    g = torch.Generator().manual_seed(seed)
    bsz = n_groups * group_size
    pad = tokenizer.pad_token_id
    vocab = len(tokenizer)
    prompts = torch.full((bsz, PROMPT_LEN), pad, dtype=torch.long)
    responses = torch.full((bsz, RESPONSE_LEN), pad, dtype=torch.long)
    attn = torch.zeros(bsz, PROMPT_LEN + RESPONSE_LEN, dtype=torch.long)
    scores = torch.zeros(bsz, RESPONSE_LEN)
    for i in range(bsz):
        p_len = int(torch.randint(8, PROMPT_LEN + 1, (1,), generator=g))
        r_len = int(torch.randint(4, RESPONSE_LEN + 1, (1,), generator=g))
        prompts[i, PROMPT_LEN - p_len :] = torch.randint(0, 256, (p_len,), generator=g)
        responses[i, :r_len] = torch.randint(0, min(vocab, 256), (r_len,), generator=g)
        attn[i, PROMPT_LEN - p_len : PROMPT_LEN + r_len] = 1
        scores[i, r_len - 1] = float(torch.rand((), generator=g) > 0.5)
    input_ids = torch.cat([prompts, responses], dim=1)
    position_ids = torch.clamp(torch.cumsum(attn, dim=1) - 1, min=0)
    batch = DataProto.from_dict(
        tensors={
            "prompts": prompts,
            "responses": responses,
            "input_ids": input_ids,
            "attention_mask": attn,
            "position_ids": position_ids,
            "response_mask": attn[:, PROMPT_LEN:].clone(),
            "token_level_scores": scores,
            "token_level_rewards": scores.clone(),
        },
        non_tensors={"uid": np.array([f"g{i // group_size}" for i in range(bsz)], dtype=object)},
        # As RayPPOTrainer.fit sets them: sampling temperature and per-sequence token counts (for MFU metrics).
        meta_info={"global_steps": 0, "temperature": 1.0, "global_token_num": attn.sum(dim=-1).tolist()},
    )
    return batch


def grpo_step(trainer, batch) -> dict[str, float]:
    """One GRPO update with the trainer's own methods: old/ref log-probs, verl's compute_advantage, update_actor."""
    from verl.trainer.ppo.core_algos import AdvantageEstimator
    from verl.trainer.ppo.ray_trainer import compute_advantage

    old_log_prob, _ = trainer._compute_old_log_prob(batch)
    old_log_prob.batch.pop("entropys", None)
    batch = batch.union(old_log_prob)
    batch = batch.union(trainer._compute_ref_log_prob(batch))
    batch = compute_advantage(
        batch,
        adv_estimator=AdvantageEstimator.GRPO,
        num_repeat=trainer.config.actor_rollout_ref.rollout.n,
        config=trainer.config.algorithm,
    )
    out = trainer._update_actor(batch)
    return {k: float(v if not isinstance(v, list) else v[-1]) for k, v in out.meta_info["metrics"].items()}


def _dump_actor_weights(worker_dict) -> dict[str, torch.Tensor]:
    """Runs inside the FSDP worker: the actor's current full weights under their HF names."""
    inner = [w for w in getattr(worker_dict, "worker_dict", {"self": worker_dict}).values() if hasattr(w, "actor")]
    module = inner[0].actor.engine.module
    out = {}
    for name, value in module.state_dict().items():
        value = value.full_tensor() if hasattr(value, "full_tensor") else value
        out[name] = value.detach().to("cpu", copy=True).float()
    return out


def actor_weights(trainer) -> dict[str, torch.Tensor]:
    """The actor's weights (world size 1: a single worker holds the full tensors)."""
    import ray

    return ray.get(trainer.actor_rollout_wg.workers[0].__ray_call__.remote(_dump_actor_weights))


def hf_token_logprobs(model_dir: Path, weights: dict[str, torch.Tensor], ids: list[int]) -> list[float]:
    """Logprob of each token of `ids` given its prefix (ids[1:]), from a plain HF fp32 forward pass."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    missing, unexpected = model.load_state_dict(weights, strict=False)
    assert not unexpected and all("rotary" in m for m in missing), (missing, unexpected)
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    return [float(logp[i - 1, ids[i]]) for i in range(1, len(ids))]


@dataclass
class Timings:
    values: dict[str, list[float]] = field(default_factory=dict)

    def timed(self, key: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        self.values.setdefault(key, []).append(time.perf_counter() - t0)
        return out
