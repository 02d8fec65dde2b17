# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The gate in front of atroposlib's real API app, as its own process: every malformed post is refused with a 4xx and
quarantined, none reaches the queue, and the good groups posted between them all come out of `/batch`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx
import pytest

from atropos_verl.api_side.door_stats import read_door_stats
from atropos_verl.api_side.gate import GateSettings, packing_reason
from atropos_verl.group_rules import Reason
from atropos_verl.launch.processes import free_port, start_process, stop_process_group, wait_http_ok
from atropos_verl.trainer.atropos_client import AtroposClient
from atropos_verl.trainer.door_rejections import DoorRejections
from atropos_verl.trainer.reject_ceiling import NothingToLearnError, RejectionCeiling
from tests.atropos_groups import group, sequence
from tests.hostile_posts import good_group, malformed_posts

VOCAB, MAX_PROMPT, MAX_RESPONSE, BATCH = 64, 16, 8, 8
MAX_BODY, MAX_INFLATED = 1 << 20, 4 << 20
TOKEN = "sesame"


@pytest.fixture
def gated_api(tmp_path):
    settings = GateSettings(max_prompt_length=MAX_PROMPT, max_response_length=MAX_RESPONSE, batch_size=BATCH,
                            quarantine_file=str(tmp_path / "quarantine.jsonl"), limits={"vocab_size": VOCAB},
                            max_body_bytes=MAX_BODY, max_decompressed_bytes=MAX_INFLATED,
                            door_file=str(tmp_path / "api_door.json"))
    (tmp_path / "gate.json").write_text(json.dumps(settings.__dict__))
    port = free_port()
    argv = [sys.executable, "-m", "atropos_verl.api_side.server", "--port", str(port), "--settings",
            str(tmp_path / "gate.json")]
    log = tmp_path / "api.log"
    proc = start_process(argv, log_path=log, env={**__import__("os").environ, "ATROPOS_VERL_API_TOKEN": TOKEN})
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/status", proc=proc, timeout=60, what="gated API", log_path=log)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client, settings, proc
    finally:
        stop_process_group(proc)


def _register(client: httpx.Client) -> None:
    client.post("/register", json={"wandb_group": "g", "wandb_project": "p", "batch_size": BATCH,
                                   "max_token_len": MAX_PROMPT + MAX_RESPONSE + 1, "checkpoint_dir": "",
                                   "save_checkpoint_interval": -1, "starting_step": 0, "num_steps": 10}
                ).raise_for_status()
    assert client.get("/batch").json() == {"batch": None}  # starts the trainer side
    reply = client.post("/register-env", json={"max_token_length": 24, "desired_name": "hostile", "weight": 1.0,
                                               "group_size": 4}).json()
    assert reply["env_id"] == 0


def test_malformed_posts_are_refused_and_quarantined_and_good_groups_all_batch(gated_api):
    client, settings, proc = gated_api
    _register(client)
    posts = malformed_posts(VOCAB, MAX_PROMPT, MAX_RESPONSE, MAX_BODY, MAX_INFLATED, registered_env_id=0)
    assert len(posts) >= 30
    good_sent, statuses = 0, {}
    for k, post in enumerate(posts):
        statuses[post.name] = post.send(client).status_code
        if k % 4 == 0:  # good groups between the bad ones, one with the registered env's id
            good = good_group(100 + k, env_id=0 if good_sent % 2 else None)
            assert client.post("/scored_data", json=good).status_code == 200
            good_sent += 1
    refused = {name: code for name, code in statuses.items() if not 400 <= code < 500}
    assert refused == {}, f"posts that were not refused: {refused}"
    assert statuses["oversized"] == statuses["gzip_bomb"] == 413
    assert proc.poll() is None

    records = [json.loads(line) for line in Path(settings.quarantine_file).read_text().splitlines()]
    body_level = {"not_json", "oversized", "gzip_bomb", "gzip_invalid"}
    assert len(records) == len(posts) - len(body_level)
    assert {r["source"] for r in records} == {"api"}
    reasons = {r["reason"] for r in records}
    for reason in (Reason.SCORE_OUT_OF_RANGE, Reason.TOKEN_OUT_OF_VOCAB, Reason.UNPACKABLE,
                   Reason.TEMPERATURE_OUT_OF_RANGE, Reason.LOGPROB_OUT_OF_RANGE, "non_finite_number"):
        assert reason in reasons

    # Everything queued is good: /batch answers (no NaN to break its JSON) with exactly the good groups.
    batched = []
    while (batch := client.get("/batch").json()["batch"]) is not None:
        batched += batch
    assert len(batched) == good_sent - good_sent % 2
    assert all(g["tokens"][0][0] == 3 for g in batched)


def test_good_groups_of_a_mixed_list_are_queued_and_the_answer_names_the_bad_one(gated_api):
    client, _settings, _proc = gated_api
    _register(client)
    bad = good_group(1)
    bad["scores"][0] = 1e39
    reply = client.post("/scored_data_list", json=[good_group(2), bad, good_group(3)])
    assert reply.status_code == 422
    assert reply.json()["accepted"] == 2 and reply.json()["rejected"] == [{"index": 1, "reason": "score_out_of_range"}]
    assert client.get("/status").json()["queue_size"] == 2


def _door(settings: GateSettings, **expected) -> dict:
    """The door file once it shows `expected` (its writes are at most 0.25 s apart; the last one is never lost)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        door = read_door_stats(settings.door_file) or {}
        if all(door.get(k) == v for k, v in expected.items()):
            return door
        time.sleep(0.05)
    raise AssertionError(f"door file never showed {expected}: {door}")


def _overlong(k: int) -> dict:
    """A group of the registered env whose responses are 3 tokens over the response cap."""
    seqs = [sequence([3, 10 + k % 40, 11], list(range(20, 20 + MAX_RESPONSE + 3))) for _ in range(4)]
    return group(seqs, [0.0, 1.0, 0.0, 1.0], env_id=0)


def test_the_door_publishes_its_rejections_and_a_trainer_waiting_on_them_stops(gated_api):
    client, settings, _proc = gated_api
    _register(client)
    for k in range(12):
        assert client.post("/scored_data", json=_overlong(k)).status_code == 422
    door = _door(settings, rejected=12)
    assert door["streak"] == 12 and door["accepted"] == 0
    assert door["by_reason"] == {Reason.RESPONSE_TOO_LONG: 12} and door["by_env"] == {"hostile": 12}
    assert door["last"] == {"reason": Reason.RESPONSE_TOO_LONG, "env": "hostile",
                            "detail": f"longest response {MAX_RESPONSE + 3} tokens > data.max_response_length=8"}

    # The trainer's side: 3 steps of 4 groups rejected in a row end its wait for a batch, with the lengths.
    reader = DoorRejections(settings.door_file)
    ceiling = RejectionCeiling(steps=3, fraction=1.0, groups_per_step=4)
    with AtroposClient(str(client.base_url)) as trainer, pytest.raises(NothingToLearnError) as failed:
        trainer.poll_batch(30, on_wait=lambda: ceiling.check_door(reader.poll()))
    assert "rejected the last 12 groups" in str(failed.value)
    assert "response_too_long x12" in str(failed.value) and "longest response 11 tokens" in str(failed.value)

    # Each step takes the rejections since the one before; a group let through ends the streak.
    assert reader.take() == ({Reason.RESPONSE_TOO_LONG: 12}, {"hostile": 12})
    assert client.post("/scored_data", json=good_group(1, env_id=0)).status_code == 200
    assert client.post("/scored_data", json=_overlong(99)).status_code == 422
    door = _door(settings, rejected=13, accepted=1)
    assert door["streak"] == 1
    ceiling.check_door(reader.poll())
    assert reader.take() == ({Reason.RESPONSE_TOO_LONG: 1}, {"hostile": 1})
    assert len(Path(settings.quarantine_file).read_text().splitlines()) == 13  # every rejected group is kept


def test_reset_data_needs_the_token(gated_api):
    client, _settings, _proc = gated_api
    assert client.get("/reset_data").status_code == 403
    assert client.get("/reset_data", headers={"x-atropos-verl-token": "wrong"}).status_code == 403
    assert client.get("/reset_data", headers={"x-atropos-verl-token": TOKEN}).status_code == 200


class _State:
    def __init__(self, sizes, batch=-1):
        self.envs = [{"group_size": s} for s in sizes]
        self.batchsize = batch


@pytest.mark.parametrize(("size", "env_id", "sizes", "expected"), [
    (4, None, [4], None), (8, None, [4], None), (2, None, [4], None), (3, None, [4], Reason.UNPACKABLE),
    (16, None, [4], Reason.UNPACKABLE), (5, 0, [4], Reason.UNPACKABLE), (3, 0, [4], None),
    (4, 1, [4], Reason.BAD_ENV_ID), (6, None, [4], Reason.UNPACKABLE), (4, None, [], None),
])
def test_packing_rule_follows_atroposlib(size, env_id, sizes, expected):
    assert packing_reason(size, env_id, _State(sizes), batch_size=8) == expected
