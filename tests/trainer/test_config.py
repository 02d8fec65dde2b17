# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from atropos_verl.errors import ConfigError
from atropos_verl.trainer.config_check import atropos_problems, check_config, context_problems, served_context
from atropos_verl.trainer.serving import apply_serving_defaults

# Every override of verl's examples/grpo_trainer/run_qwen2_5-3b_gsm8k_grpo_lora.sh (verl 0.9.x), unchanged.
LORA_EXAMPLE = [
    "algorithm.adv_estimator=grpo",
    "trainer.val_before_train=False",
    "data.train_files=/root/data/gsm8k/train.parquet",
    "data.val_files=/root/data/gsm8k/test.parquet",
    "data.train_batch_size=16",
    "data.max_prompt_length=512",
    "data.max_response_length=1024",
    "data.filter_overlong_prompts=True",
    "data.truncation='error'",
    "data.shuffle=False",
    "actor_rollout_ref.model.path=Qwen/Qwen2.5-3B-Instruct",
    "actor_rollout_ref.model.use_shm=True",
    "actor_rollout_ref.model.lora_rank=64",
    "actor_rollout_ref.model.lora_alpha=32",
    "actor_rollout_ref.actor.optim.lr=3e-6",
    "actor_rollout_ref.model.use_remove_padding=True",
    "actor_rollout_ref.actor.ppo_mini_batch_size=16",
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=40",
    "actor_rollout_ref.actor.use_kl_loss=True",
    "actor_rollout_ref.actor.kl_loss_coef=0.001",
    "actor_rollout_ref.actor.kl_loss_type=low_var_kl",
    "actor_rollout_ref.actor.entropy_coeff=0",
    "actor_rollout_ref.model.enable_gradient_checkpointing=True",
    "actor_rollout_ref.actor.fsdp_config.param_offload=False",
    "actor_rollout_ref.actor.fsdp_config.optimizer_offload=False",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=40",
    "actor_rollout_ref.rollout.tensor_model_parallel_size=2",
    "actor_rollout_ref.rollout.name=vllm",
    "actor_rollout_ref.rollout.gpu_memory_utilization=0.6",
    "actor_rollout_ref.rollout.n=5",
    "actor_rollout_ref.rollout.load_format=safetensors",
    "actor_rollout_ref.rollout.layered_summon=True",
    "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=40",
    "actor_rollout_ref.ref.fsdp_config.param_offload=True",
    "algorithm.use_kl_in_reward=False",
    "trainer.critic_warmup=0",
    "trainer.logger=['console','wandb']",
    "trainer.project_name='verl_grpo_example_gsm8k'",
    "trainer.experiment_name='qwen2.5_3b_grpo_lora'",
    "trainer.n_gpus_per_node=8",
    "trainer.nnodes=1",
    "trainer.save_freq=20",
    "trainer.test_freq=5",
    "trainer.total_epochs=15",
]
# What the LoRA example needs changed to pass the Atropos checks (validation in the environments, whole micro-batches).
LORA_EXAMPLE_FIXED = ["trainer.test_freq=-1", "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=10"]


def compose_trainer(overrides: list[str]):
    """The config as the trainer checks it: composed, then the serving defaults (LoRA merged), then resolved."""
    with initialize_config_module(config_module="atropos_verl.trainer.config", version_base=None):
        cfg = compose(config_name="atropos_trainer", overrides=overrides)
    apply_serving_defaults(cfg, overrides)
    OmegaConf.resolve(cfg)
    return cfg


def test_lora_example_overrides_compose_unchanged():
    cfg = compose_trainer(LORA_EXAMPLE)
    assert cfg.actor_rollout_ref.model.lora_rank == 64
    assert cfg.actor_rollout_ref.model.lora_alpha == 32
    assert cfg.actor_rollout_ref.rollout.tensor_model_parallel_size == 2
    assert cfg.actor_rollout_ref.rollout.gpu_memory_utilization == 0.6
    assert list(cfg.trainer.logger) == ["console", "wandb"]
    assert cfg.actor_rollout_ref.model.lora.merge is True  # environments get the trained adapter over HTTP
    assert cfg.trainer.use_v1 is False
    assert cfg.atropos.api_url.startswith("http")


def test_lora_example_validates_except_in_trainer_validation_and_micro_batches():
    # Validation runs in the environments (the example's test_freq=5 must go). Its micro batch of 40 does not divide
    # a per-rank mini-batch of 16 x 5 / 8 = 10 sequences, which verl 0.9.1's engine asserts on at the first update
    # (verl/workers/engine/utils.py prepare_micro_batches): reported up front instead.
    cfg = compose_trainer(LORA_EXAMPLE)
    assert atropos_problems(cfg) == [
        "a PPO mini-batch holds 10 sequences per rank (ppo_mini_batch_size x rollout.n / ranks), not a multiple "
        "of actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=40",
        "trainer.test_freq>0 / trainer.val_before_train=true: validation runs in the environments "
        "(their steps_per_eval); set trainer.test_freq=-1 trainer.val_before_train=false",
    ]
    check_config(compose_trainer(LORA_EXAMPLE + LORA_EXAMPLE_FIXED), use_reference_policy=True)


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        (
            "actor_rollout_ref.actor.ppo_mini_batch_size=6",
            "not a multiple of actor_rollout_ref.actor.ppo_mini_batch_size=6",
        ),
        ("actor_rollout_ref.rollout.n=1", "group size"),
        ("algorithm.adv_estimator=gae", "adv_estimator='gae'"),
        ("trainer.use_v1=true", "trainer.use_v1=false"),
        ("trainer.total_training_steps=null", "total_training_steps"),
        ("atropos.drain_timeout=0", "atropos.drain_timeout=0"),
        ("atropos.on_drain_timeout=ignore", "on_drain_timeout"),
        ("actor_rollout_ref.rollout.name=hf", "HTTP server"),
        ("trainer.n_gpus_per_node=3", "not divisible by the 3 data-parallel ranks"),
        (
            "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
            "10 sequences per rank (ppo_mini_batch_size x rollout.n / ranks), not a multiple of "
            "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
        ),
    ],
)
def test_inconsistent_configs_name_the_key(override, needle):
    cfg = compose_trainer(LORA_EXAMPLE + LORA_EXAMPLE_FIXED + [override])
    with pytest.raises(ConfigError) as err:
        check_config(cfg, use_reference_policy=True)
    assert needle in str(err.value)


def test_every_problem_is_reported_at_once():
    cfg = compose_trainer(LORA_EXAMPLE + ["actor_rollout_ref.rollout.n=1", "atropos.poll_timeout=-1"])
    problems = atropos_problems(cfg)
    assert any("rollout.n=1" in p for p in problems)
    assert any("poll_timeout" in p for p in problems)
    assert any("test_freq" in p for p in problems)


def test_verl_validation_errors_are_reported_as_config_errors():
    # Setting both the deprecated and the per-GPU micro batch is caught by verl's own validate_config.
    cfg = compose_trainer(
        LORA_EXAMPLE
        + [
            "trainer.test_freq=-1",
            "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=10",
            "actor_rollout_ref.rollout.log_prob_micro_batch_size=8",
        ]
    )
    with pytest.raises(ConfigError, match="validate_config"):
        check_config(cfg, use_reference_policy=True)


def test_bypass_mode_reaches_the_actor_workers_config():
    # Workers are built from the dataclass of `actor_rollout_ref.actor`; the bypass loss must be in it at that point.
    from verl.trainer.ppo.core_algos import get_policy_loss_fn
    from verl.utils.config import omega_conf_to_dataclass

    from atropos_verl.trainer.old_log_probs import route_bypass_loss

    config = compose_trainer(
        [
            "algorithm.rollout_correction.bypass_mode=true",
            "algorithm.rollout_correction.loss_type=reinforce",
            "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
        ]
    )
    assert not [p for p in atropos_problems(config) if "bypass" in p]
    route_bypass_loss(config)
    actor = omega_conf_to_dataclass(config.actor_rollout_ref.actor)
    assert actor.policy_loss.loss_mode == "bypass_mode"
    assert actor.policy_loss.rollout_correction.get("loss_type") == "reinforce"
    assert get_policy_loss_fn(actor.policy_loss.loss_mode).__name__ == "compute_policy_loss_bypass_mode"


def test_decoupled_mode_keeps_the_configured_loss():
    from atropos_verl.trainer.old_log_probs import route_bypass_loss

    config = compose_trainer(["actor_rollout_ref.actor.policy_loss.loss_mode=gspo"])
    route_bypass_loss(config)
    assert config.actor_rollout_ref.actor.policy_loss.loss_mode == "gspo"


def small_context_model(tmp_path, positions: int = 128) -> str:
    from transformers import Qwen2Config

    Qwen2Config(
        vocab_size=300,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=positions,
    ).save_pretrained(tmp_path)
    return str(tmp_path)


@pytest.mark.parametrize(
    ("lengths", "extra", "needle"),
    [
        # a real Atropos environment (word_hunt) with a tiny model: every request was refused by the servers
        ((1024, 256), [], "= 1280 tokens, but the rollout servers serve a context of 128 (max_position_embeddings of"),
        (
            (64, 64),
            ["actor_rollout_ref.rollout.max_model_len=100"],
            "serve a context of 100 (actor_rollout_ref.rollout.max_model_len)",
        ),
    ],
)
def test_lengths_beyond_the_served_context_name_the_keys(tmp_path, lengths, extra, needle):
    prompt, response = lengths
    cfg = compose_trainer(
        LORA_EXAMPLE
        + LORA_EXAMPLE_FIXED
        + extra
        + [
            f"actor_rollout_ref.model.path={small_context_model(tmp_path)}",
            f"data.max_prompt_length={prompt}",
            f"data.max_response_length={response}",
        ]
    )
    with pytest.raises(ConfigError) as err:
        check_config(cfg, use_reference_policy=True)
    assert needle in str(err.value)
    assert "data.max_prompt_length + data.max_response_length" in str(err.value)


def test_lengths_within_the_served_context_pass(tmp_path):
    local = compose_trainer(
        LORA_EXAMPLE
        + LORA_EXAMPLE_FIXED
        + [
            f"actor_rollout_ref.model.path={small_context_model(tmp_path)}",
            "data.max_prompt_length=64",
            "data.max_response_length=64",
        ]
    )
    assert context_problems(local, served_context(local)) == []
    # a hub model that is not on this machine is not checked here (the servers' start reports it)
    hub = compose_trainer(
        LORA_EXAMPLE + LORA_EXAMPLE_FIXED + ["actor_rollout_ref.model.path=no-such-org/no-such-model"]
    )
    assert served_context(hub) is None
