#!/usr/bin/env bash
# The GSM8K LoRA recipe with verl's vLLM replica instead of SGLang (environments reach it through the env runner's
# /v1/completions adapter). Extra verl overrides are forwarded.
set -euo pipefail
cd "$(dirname "$0")/.."
exec atropos-verl run configs/gsm8k_vllm.yaml -- "$@"
