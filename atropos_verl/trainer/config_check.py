# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Consistency checks of a composed trainer config, run before any Ray actor starts.

verl's own `validate_config` covers the batch arithmetic of its workers; it raises bare assertions deep inside the
launch. The checks here add what an Atropos run needs on top (GRPO groups arriving from outside, a step budget instead
of epochs, bounded waits) and report every problem at once, each naming the key to change.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from atropos_verl.errors import ConfigError

from .placement import placement_problems
from .serving import serving_problems

GROUP_ESTIMATORS = ("grpo", "grpo_passk", "grpo_vectorized", "rloo", "rloo_vectorized", "opo", "gpg")
ROLLOUT_BACKENDS = ("vllm", "sglang")
MODES = ("hybrid", "async")
#: `trainer.drain.policy_stamp.MIDDLEWARE`, spelled out so this module imports nothing of verl's.
STAMP_MIDDLEWARE = "atropos_verl.trainer.drain.policy_stamp.PolicyVersionStamp"


def _get(config: DictConfig, key: str, default=None):
    value = OmegaConf.select(config, key, default=default)
    return default if value is None else value


def atropos_problems(config: DictConfig) -> list[str]:
    """Problems specific to training on Atropos groups; empty when the config is usable."""
    problems: list[str] = []
    arr = "actor_rollout_ref"
    n = int(_get(config, f"{arr}.rollout.n", 1))
    prompts = int(_get(config, "data.train_batch_size", 0))
    mini = int(_get(config, f"{arr}.actor.ppo_mini_batch_size", 0))
    n_gpus = int(_get(config, "trainer.n_gpus_per_node", 1)) * int(_get(config, "trainer.nnodes", 1))

    estimator = str(_get(config, "algorithm.adv_estimator", ""))
    if estimator not in GROUP_ESTIMATORS:
        problems.append(
            f"algorithm.adv_estimator={estimator!r}: Atropos groups carry no values for a critic; use one of "
            f"{', '.join(GROUP_ESTIMATORS)} (grpo is the default)"
        )
    if n < 2:
        problems.append(
            f"actor_rollout_ref.rollout.n={n}: it is the Atropos group size (env --env.group_size), and a group "
            f"advantage needs at least 2 sequences per group"
        )
    if prompts <= 0:
        problems.append(f"data.train_batch_size={prompts}: must be the number of groups per step (> 0)")
    elif mini <= 0 or prompts % mini:
        problems.append(
            f"data.train_batch_size={prompts} is not a multiple of actor_rollout_ref.actor.ppo_mini_batch_size={mini}"
        )
    if prompts > 0 and n_gpus > 0 and (prompts * n) % n_gpus:
        problems.append(
            f"a step has data.train_batch_size x rollout.n = {prompts * n} sequences, not divisible by the "
            f"{n_gpus} data-parallel ranks (trainer.n_gpus_per_node x trainer.nnodes)"
        )
    micro = _get(config, f"{arr}.actor.ppo_micro_batch_size_per_gpu")
    if micro and mini > 0 and n_gpus > 0 and not _get(config, f"{arr}.actor.use_dynamic_bsz", False):
        per_rank = mini * n // n_gpus
        if per_rank % int(micro):
            problems.append(
                f"a PPO mini-batch holds {per_rank} sequences per rank (ppo_mini_batch_size x rollout.n / ranks), "
                f"not a multiple of {arr}.actor.ppo_micro_batch_size_per_gpu={micro}"
            )
    if _get(config, "trainer.use_v1", False):
        problems.append(
            "trainer.use_v1=true: the Atropos trainer extends verl's RayPPOTrainer; set trainer.use_v1=false"
        )
    if not _get(config, f"{arr}.hybrid_engine", True):
        problems.append(f"{arr}.hybrid_engine=false: RayPPOTrainer supports only the hybrid engine")
    backend = str(_get(config, f"{arr}.rollout.name", ""))
    if backend not in ROLLOUT_BACKENDS:
        problems.append(
            f"{arr}.rollout.name={backend!r}: environments need an HTTP server; use one of {ROLLOUT_BACKENDS}"
        )
    steps = _get(config, "trainer.total_training_steps")
    if steps is None or int(steps) <= 0:
        problems.append("trainer.total_training_steps must be a positive number of steps (there are no epochs)")
    if _get(config, "trainer.critic_warmup", 0):
        problems.append("trainer.critic_warmup must be 0: there is no critic")
    if _get(config, "trainer.test_freq", -1) > 0 or _get(config, "trainer.val_before_train", False):
        problems.append(
            "trainer.test_freq>0 / trainer.val_before_train=true: validation runs in the environments "
            "(their steps_per_eval); set trainer.test_freq=-1 trainer.val_before_train=false"
        )
    if not _get(config, "atropos.api_url"):
        problems.append("atropos.api_url is empty: set it to the trajectory API, e.g. http://127.0.0.1:8000")
    for key in ("poll_timeout", "drain_timeout", "sync_timeout"):
        value = _get(config, f"atropos.{key}")
        if value is None or float(value) <= 0:
            problems.append(f"atropos.{key}={value}: must be a positive number of seconds")
    if _get(config, "atropos.on_drain_timeout") not in ("abort", "fail"):
        problems.append("atropos.on_drain_timeout must be 'abort' or 'fail'")
    problems += mode_problems(config)
    problems += placement_problems(config)
    problems += serving_problems(config)
    return problems


def mode_problems(config: DictConfig) -> list[str]:
    """What asynchronous mode needs: servers that stamp their policy version and stay awake through updates."""
    mode = _get(config, "atropos.mode", "hybrid")
    problems: list[str] = []
    if mode not in MODES:
        return [f"atropos.mode={mode!r}: use one of {', '.join(MODES)}"]
    bound = _get(config, "atropos.max_staleness")
    if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int) or bound < 0):
        problems.append(f"atropos.max_staleness={bound!r}: must be a whole number of steps >= 0, or null")
    if mode != "async":
        return problems
    rollout = "actor_rollout_ref.rollout"
    if _get(config, f"{rollout}.name") != "vllm":
        problems.append(
            f"atropos.mode=async needs {rollout}.name=vllm: only verl's vLLM servers stamp the policy version "
            "each completion was generated by"
        )
    elif _get(config, f"{rollout}.engine_kwargs.vllm.middleware") != STAMP_MIDDLEWARE:
        problems.append(
            f"atropos.mode=async needs {rollout}.engine_kwargs.vllm.middleware={STAMP_MIDDLEWARE} (the policy "
            "version stamp); it was replaced"
        )
    if _get(config, f"{rollout}.free_cache_engine", False):
        problems.append(
            f"atropos.mode=async keeps the servers generating while the actor updates; {rollout}.free_cache_engine"
            "=true would release their memory at every push. Set it to false (and size gpu_memory_utilization so "
            "the actor fits beside the server)"
        )
    return problems


def served_context(config: DictConfig) -> tuple[int, str] | None:
    """The rollout servers' context length as verl sets it, and where it comes from; None when it cannot be known here.

    verl serves `rollout.max_model_len`, else the model's max position embeddings
    (`verl/workers/rollout/vllm_rollout/vllm_async_server.py` `_validate_configs`). The model's config is read only
    from local files: a hub model not yet downloaded is not checked.
    """
    explicit = _get(config, "actor_rollout_ref.rollout.max_model_len")
    if explicit:
        return int(explicit), "actor_rollout_ref.rollout.max_model_len"
    path = _get(config, "actor_rollout_ref.model.path")
    if not path:
        return None
    try:
        from transformers import AutoConfig
        from verl.workers.rollout.utils import get_max_position_embeddings

        hf_config = AutoConfig.from_pretrained(
            str(path),
            local_files_only=True,
            trust_remote_code=bool(_get(config, "actor_rollout_ref.model.trust_remote_code", False)),
        )
        return get_max_position_embeddings(hf_config), f"max_position_embeddings of {path}"
    except Exception:  # not on this machine, or no such field: the servers' own start reports it
        return None


def context_problems(config: DictConfig, context: tuple[int, str] | None) -> list[str]:
    """The trainer takes sequences of prompt + response tokens; servers that refuse longer requests fail only in the
    environments' logs (every request answered 400, retried), while the run waits for batches that never come."""
    if context is None:
        return []
    limit, source = context
    total = int(_get(config, "data.max_prompt_length", 0)) + int(_get(config, "data.max_response_length", 0))
    if total <= limit:
        return []
    return [
        f"data.max_prompt_length + data.max_response_length = {total} tokens, but the rollout servers serve a context "
        f"of {limit} ({source}): they would refuse every longer request, and environments would see only the "
        f"refusals; lower the two lengths, or serve a model with a longer context"
    ]


def check_config(config: DictConfig, *, use_reference_policy: bool, use_critic: bool = False) -> None:
    """Run the Atropos checks, then verl's own `validate_config`; raise ConfigError listing what is wrong."""
    problems = atropos_problems(config) + context_problems(config, served_context(config))
    if not problems:
        from verl.utils.config import validate_config

        try:
            validate_config(config=config, use_reference_policy=use_reference_policy, use_critic=use_critic)
        except (AssertionError, ValueError) as exc:
            problems.append(f"verl.utils.config.validate_config: {exc}")
    if problems:
        raise ConfigError("invalid trainer config:\n  - " + "\n  - ".join(problems))
