#!/usr/bin/env bash
# Two nodes x 8 GPUs. Start Ray first on every node:
#   head:    ray start --head --port=6379
#   workers: ray start --address=<head-ip>:6379
# then run this on the head node; RAY_ADDRESS picks the cluster (default <head-ip>:6379 from `ray start`).
set -euo pipefail
cd "$(dirname "$0")/.."
exec atropos-verl run configs/gsm8k_multinode.yaml -- "$@"
