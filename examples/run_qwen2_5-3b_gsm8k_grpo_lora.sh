#!/usr/bin/env bash
# GRPO + LoRA on Atropos' GSM8K environment with Qwen2.5-3B-Instruct: verl's
# examples/grpo_trainer/run_qwen2_5-3b_gsm8k_grpo_lora.sh, with Atropos producing the rollouts.
# Every setting is in configs/gsm8k.yaml; any verl override given here wins, e.g.
#   bash examples/run_qwen2_5-3b_gsm8k_grpo_lora.sh actor_rollout_ref.actor.optim.lr=1e-6 trainer.save_freq=10
set -euo pipefail
cd "$(dirname "$0")/.."
exec atropos-verl run configs/gsm8k.yaml -- "$@"
