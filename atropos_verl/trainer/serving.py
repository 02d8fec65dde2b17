# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""What the rollout servers must serve for environments that reach them over HTTP, not through verl's own `generate`.

- LoRA: verl applies an unmerged adapter only on its own Ray `generate` path (vLLM `LoRARequest`, SGLang
  `lora_path`); a request naming the served model over HTTP gets the base weights, so every environment would sample
  from a policy that never changes while the trainer's log-probs come from the adapter. With
  `actor_rollout_ref.model.lora.merge=true` verl pushes the merged weights instead
  (`verl/workers/engine/fsdp/transformer_impl.py` get_per_tensor_param), and the servers serve the trained policy
  under the name environments use. It is the default here; a config that turns it off is refused. (verl 0.9.1's
  unmerged SGLang adapter push also fails: it builds `LoadLoRAAdapterFromTensorsReqInput` with a field SGLang 0.5.x
  does not have.)
- SGLang's OpenAI chat route samples with the model's `generation_config` defaults (Qwen2.5: top_p 0.8, top_k 20,
  repetition penalty 1.05) unless `sampling_defaults=openai`; verl overrides these for vLLM only. Environments that
  chat would then sample from a distribution the trainer does not model.

- Asynchronous mode keeps the servers' memory through every push (`free_cache_engine=false`); standalone placement
  gets its checkpoint engine and manager (`placement.apply_standalone_defaults`).

All are filled in only where the user did not set the key (`hydra_overrides.set_unless_user_set`), by the launcher's
plan (so that it refuses a bad config before anything starts) and by the trainer alike.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from atropos_verl.hydra_overrides import set_unless_user_set

from .placement import apply_standalone_defaults

MODEL = "actor_rollout_ref.model"
LORA_MERGE_KEY = f"{MODEL}.lora.merge"
SGLANG_SAMPLING_KEY = "actor_rollout_ref.rollout.engine_kwargs.sglang.sampling_defaults"
FREE_CACHE_KEY = "actor_rollout_ref.rollout.free_cache_engine"


def lora_rank(config: Any) -> int:
    """verl's two spellings of the adapter's rank (`model.lora.rank`, the older `model.lora_rank`)."""
    return max(int(OmegaConf.select(config, f"{MODEL}.lora.rank", default=0) or 0),
               int(OmegaConf.select(config, f"{MODEL}.lora_rank", default=0) or 0))


def apply_mode_defaults(config: DictConfig, user_overrides: list[str], *, cpu_platform: bool) -> None:
    if OmegaConf.select(config, "atropos.mode") != "async":
        return
    apply_standalone_defaults(config, user_overrides, cpu_platform=cpu_platform)
    set_unless_user_set(config, user_overrides, FREE_CACHE_KEY, False)


def apply_serving_defaults(config: DictConfig, user_overrides: list[str]) -> None:
    if lora_rank(config) > 0:
        set_unless_user_set(config, user_overrides, LORA_MERGE_KEY, True)
    if OmegaConf.select(config, "actor_rollout_ref.rollout.name") == "sglang":
        set_unless_user_set(config, user_overrides, SGLANG_SAMPLING_KEY, "openai")


def serving_problems(config: Any) -> list[str]:
    problems = []
    if lora_rank(config) > 0 and not OmegaConf.select(config, LORA_MERGE_KEY, default=False):
        problems.append(
            f"LoRA (rank {lora_rank(config)}) with {LORA_MERGE_KEY}=false: verl applies an unmerged adapter only to "
            "its own generate calls, and environments reach the servers over HTTP, so they would sample from the "
            f"base model for the whole run; remove {LORA_MERGE_KEY}=false (merged weights are pushed by default)"
        )
    if OmegaConf.select(config, "actor_rollout_ref.rollout.name") == "sglang":
        sampling = OmegaConf.select(config, SGLANG_SAMPLING_KEY, default=None)
        if sampling not in (None, "openai"):
            problems.append(
                f"{SGLANG_SAMPLING_KEY}={sampling}: SGLang's chat route would add the model's generation_config "
                "sampling (top_p, top_k, repetition penalty) to the environments' requests, which the trainer does "
                "not model; remove it (openai is set by default)"
            )
    return problems
