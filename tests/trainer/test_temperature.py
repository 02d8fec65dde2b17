# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import pytest
import torch
from verl.utils import tensordict_utils as tu
from verl.workers.utils.padding import left_right_2_no_padding

from atropos_verl.trainer.batch import groups_to_dataproto
from atropos_verl.trainer.temperature import ItemTemperatureProto, MixedTemperatureError, check_engine_supports


def batch_with(temps_per_group):
    groups = []
    for t in temps_per_group:
        groups.append(
            {
                "tokens": [[1, 2, 3, 4], [1, 2, 3, 5]],
                "masks": [[-100, -100, 3, 4], [-100, -100, 3, 5]],
                "scores": [1.0, 0.0],
                "generation_params": {"temperature": t},
            }
        )
    return groups_to_dataproto(groups, pad_token_id=0, max_prompt_length=8, max_response_length=8).data


def test_one_temperature_goes_to_the_engine_as_that_scalar():
    data = ItemTemperatureProto.wrap(batch_with([0.7, 0.7]))
    data.meta_info["temperature"] = 1.0  # what verl's _update_actor writes from rollout.temperature
    td = data.to_tensordict()
    assert tu.get_non_tensor_data(td, "temperature", None) == pytest.approx(0.7)
    assert "temperature" in data.batch.keys()  # the batch itself is untouched
    left_right_2_no_padding(td)  # verl's next step accepts it


def test_mixed_temperatures_go_as_a_per_sequence_tensor():
    data = ItemTemperatureProto.wrap(batch_with([0.7, 1.3]))
    data.meta_info["temperature"] = 1.0
    td = data.to_tensordict()
    assert torch.allclose(td["temperature"], torch.tensor([0.7, 0.7, 1.3, 1.3]))
    assert "temperature" not in data.meta_info or data.meta_info["temperature"] == 1.0
    left_right_2_no_padding(td)


def test_union_keeps_the_wrapper():
    from verl import DataProto

    data = ItemTemperatureProto.wrap(batch_with([0.7, 1.3]))
    other = DataProto.from_dict(tensors={"old_log_probs": torch.zeros(4, data.batch["responses"].shape[1])})
    assert isinstance(data.union(other), ItemTemperatureProto)


def test_fused_kernels_reject_mixed_temperatures_clearly():
    check_engine_supports(batch_with([0.7, 0.7]), use_fused_kernels=True)
    check_engine_supports(batch_with([0.7, 1.3]), use_fused_kernels=False)
    with pytest.raises(MixedTemperatureError, match="use_fused_kernels"):
        check_engine_supports(batch_with([0.7, 1.3]), use_fused_kernels=True)
