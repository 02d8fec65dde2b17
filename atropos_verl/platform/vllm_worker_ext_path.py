# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Import path of the CPU worker extension, without importing vLLM/verl's rollout code where only the name is needed."""

WORKER_EXTENSION_CLS = "atropos_verl.platform.vllm_worker_ext.CPUColocateWorkerExtension"
