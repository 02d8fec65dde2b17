# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from atropos_verl.trainer.batch import groups_to_dataproto
from atropos_verl.trainer.endpoints import Endpoints, publish_endpoints, read_endpoints
from atropos_verl.trainer.metrics import group_metrics, split_drain, step_breakdown, time_split
from atropos_verl.trainer.progress import StepProgress, summary_line
from atropos_verl.trainer.quarantine import QuarantineFile
from atropos_verl.trainer.step_state import AtroposStepState


def group(env_id, scores, prompt=(1, 2), response=(3, 4, 5)):
    tokens = [list(prompt) + list(response) for _ in scores]
    masks = [[-100] * len(prompt) + list(response) for _ in scores]
    return {"tokens": tokens, "masks": masks, "scores": list(scores), "env_id": env_id}


def test_quarantine_keeps_raw_group_reason_step_and_env(tmp_path):
    q = QuarantineFile(tmp_path / "sub" / "quarantine.jsonl")
    bad = {"tokens": [[1, 2]], "masks": [[1]], "scores": [float("nan")], "env_id": 7}
    counts = q.write(12, [group(0, [1, 0]), bad], [(1, "mask_length_mismatch")])
    assert counts == {"mask_length_mismatch": 1}
    (record,) = q.read()
    assert record["step"] == 12 and record["reason"] == "mask_length_mismatch" and record["env_id"] == 7
    assert record["group"]["tokens"] == [[1, 2]] and record["group"]["scores"] == ["nan"]
    q.write(13, [bad], [(0, "score_not_finite")])
    assert [r["step"] for r in q.read()] == [12, 13]
    # Every line is strict JSON (no NaN literals) so any reader can parse the file.
    for line in (tmp_path / "sub" / "quarantine.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


def test_quarantine_writes_nothing_without_rejects(tmp_path):
    q = QuarantineFile(tmp_path / "q.jsonl")
    assert q.write(1, [group(0, [1, 0])], []) == {}
    assert not q.path.exists()


def test_group_metrics_per_env():
    groups = [group(0, [1.0, 0.0]), group(0, [1.0, 1.0]), group(3, [0.0, 0.0], response=(3, 4, 5, 6, 7))]
    data = groups_to_dataproto(groups, pad_token_id=0, max_prompt_length=8, max_response_length=8).data
    m = group_metrics(data, received=5, rejected={"empty_group": 2})
    assert m["atropos/groups_received"] == 5 and m["atropos/groups_accepted"] == 3
    assert m["atropos/groups_rejected"] == 2 and m["atropos/rejected/empty_group"] == 2
    assert m["atropos/env/0/groups"] == 2 and m["atropos/env/3/groups"] == 1
    assert m["atropos/env/0/score_mean"] == pytest.approx(0.75)
    assert m["atropos/env/3/score_mean"] == 0.0
    assert m["atropos/env/0/response_length_mean"] == 3 and m["atropos/env/3/response_length_mean"] == 5


def test_time_split_adds_up_to_the_step():
    timing = {"step": 10.0, "wait_batch": 6.0, "drain": 0.5, "sleep_replicas": 0.2, "update_weights": 0.3,
              "old_log_prob": 1.0, "update_actor": 2.0}  # fmt: skip
    split = time_split(timing)
    idle = split.pop("atropos/idle_fraction")
    three = ("timing_s/atropos_wait", "timing_s/sync", "timing_s/train")
    parts = {k: split.pop(k) for k in list(split) if k not in three}
    assert split == {"timing_s/atropos_wait": 6.0, "timing_s/sync": pytest.approx(1.0), "timing_s/train": 3.0}
    assert math.fsum(split.values()) == pytest.approx(timing["step"])
    assert idle == pytest.approx(0.6)
    assert parts == step_breakdown(timing)


def test_drain_wait_moves_from_the_sync_to_the_wait():
    timing = {"step": 10.0, "wait_batch": 4.0, "drain": 0.5, "update_weights": 0.3, "update_actor": 2.0}
    split_drain(timing, 0.4)
    assert timing["drain"] == pytest.approx(0.1) and timing["drain_wait"] == pytest.approx(0.4)
    split = time_split(timing)
    assert split["timing_s/atropos_wait"] == pytest.approx(4.4) and split["timing_s/sync"] == pytest.approx(0.4)
    assert split["timing_s/atropos_wait"] + split["timing_s/verl"] + split["timing_s/integration"] == pytest.approx(10)
    # a server-side wait longer than the trainer's timer (clock skew) never makes `drain` negative
    again = {"step": 1.0, "drain": 0.2}
    split_drain(again, 0.5)
    assert again == {"step": 1.0, "drain": 0.0, "drain_wait": 0.2}


def test_step_breakdown_counts_the_unnamed_rest_as_the_integrations():
    timing = {"step": 10.0, "wait_batch": 4.0, "api_status": 0.1, "convert": 0.2, "served_stats": 0.3, "drain": 0.1,
              "update_weights": 0.3, "old_log_prob": 1.0, "ref": 1.0, "adv": 0.5, "update_actor": 2.0,
              "save_checkpoint": 0.4}  # fmt: skip
    parts = step_breakdown(timing)
    assert parts["timing_s/verl"] == pytest.approx(4.9)
    assert parts["timing_s/integration_unnamed"] == pytest.approx(10.0 - 4.0 - 4.9 - 1.0)
    assert parts["timing_s/integration"] == pytest.approx(1.1)
    assert parts["atropos/integration_share"] == pytest.approx(0.11)
    # timers that overlap the step's total never make the rest negative
    assert step_breakdown({"step": 1.0, "wait_batch": 0.9, "update_actor": 0.2})["timing_s/integration_unnamed"] == 0


def test_plain_progress_line_when_not_a_terminal(capsys):
    import io

    stream = io.StringIO()
    progress = StepProgress(3, stream=stream)
    progress.update(1, {"timing_s/atropos_wait": 1.5, "actor/pg_loss": -0.25, "critic/score/mean": 0.5})
    progress.close()
    assert stream.getvalue().strip() == (
        "[atropos-verl] step 1/3 | wait 1.50s | train 0.00s | sync 0.00s | score 0.5 | pg_loss -0.25"
    )
    assert summary_line(2, 3, {}).startswith("step 2/3")


def test_endpoints_written_atomically_and_readable(tmp_path):
    path = tmp_path / "run" / "endpoints.json"
    publish_endpoints(path, Endpoints(["10.0.0.1:4321"], "vllm", "/models/tiny", "/models/tiny", step=4))
    ep = read_endpoints(path)
    assert ep.base_urls == ["http://10.0.0.1:4321/v1"] and ep.step == 4 and ep.backend == "vllm"
    assert [p.name for p in path.parent.iterdir()] == ["endpoints.json"]  # no temp file left behind


def test_step_state_roundtrip_through_torch_save(tmp_path):
    state = AtroposStepState(total_steps=5)
    state.api_step = 3
    torch.save(state.state_dict(), tmp_path / "data.pt")
    restored = AtroposStepState(total_steps=5)
    restored.load_state_dict(torch.load(tmp_path / "data.pt", weights_only=False))
    assert restored.api_step == 3 and len(restored) == 5
    assert np.isclose(len(AtroposStepState(0)), 1)
