# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Contract tests of AtroposClient against atroposlib 0.4.0's real trajectory API, run as a child process."""

from __future__ import annotations

import gzip
import json
import threading
import time

import httpx
import pytest

from atropos_verl.launch.api_server import AtroposAPIProcess
from atropos_verl.trainer.atropos_client import AtroposAPIError, AtroposClient, Registration
from atropos_verl.trainer.batch import groups_to_dataproto
from tests.atropos_groups import simple_group

GROUP_SIZE = 4
PROMPTS_PER_STEP = 2


def registration(starting_step: int = 0) -> Registration:
    return Registration.for_trainer(
        train_batch_size=PROMPTS_PER_STEP,
        group_size=GROUP_SIZE,
        max_prompt_length=32,
        max_response_length=32,
        checkpoint_dir="/tmp/ckpt",
        save_checkpoint_interval=1,
        starting_step=starting_step,
        num_steps=10,
        wandb_project="p",
        wandb_group="g",
    )


class ScriptedEnv:
    """Speaks the environment side of the protocol exactly as atroposlib's BaseEnv does, over plain HTTP."""

    def __init__(self, url: str):
        self.http = httpx.Client(base_url=url, timeout=10)
        self.env_id: int | None = None

    def try_register(self) -> dict:
        body = {"max_token_length": 65, "desired_name": "scripted", "weight": 1.0, "group_size": GROUP_SIZE}
        reply = self.http.post("/register-env", json=body).json()
        if reply.get("status") == "success":
            self.env_id = reply["env_id"]
        return reply

    def post(self, group: dict) -> None:
        self.http.post("/scored_data", json={**group, "env_id": self.env_id}).raise_for_status()

    def post_list_gzip(self, groups: list[dict]) -> None:
        body = gzip.compress(json.dumps([{**g, "env_id": self.env_id} for g in groups]).encode())
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        self.http.post("/scored_data_list", content=body, headers=headers).raise_for_status()


class RecordingTransport(httpx.HTTPTransport):
    """A real HTTP transport that remembers the Content-Encoding of each /batch response."""

    def __init__(self):
        super().__init__()
        self.batch_encodings: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path == "/batch":
            self.batch_encodings.append(response.headers.get("content-encoding"))
        return response


@pytest.fixture
def api(tmp_path):
    with AtroposAPIProcess(log_path=tmp_path / "api.log") as proc:
        yield proc


def test_handshake_batches_and_restart(api, tmp_path):
    env = ScriptedEnv(api.url)
    assert env.try_register()["status"] == "wait for trainer to start"  # no trainer yet

    transport = RecordingTransport()
    client = AtroposClient(api.url, transport=transport)
    client.register(registration(starting_step=5))
    assert env.try_register()["status"] == "wait for trainer to start"  # registered, but no /batch yet
    assert client.get_batch() is None  # first /batch releases the handshake
    reply = env.try_register()
    assert reply["status"] == "success" and reply["starting_step"] == 5

    env.post(simple_group(GROUP_SIZE, env_id=env.env_id))
    assert client.get_batch() is None  # 4 of 8 sequences queued: not a batch yet
    env.post_list_gzip([simple_group(GROUP_SIZE, base=40), simple_group(GROUP_SIZE, base=70)])
    batch = client.poll_batch(timeout=10)
    assert sum(len(g["tokens"]) for g in batch) == 8
    assert client.status() == {"current_step": 6, "queue_size": 1}
    assert "gzip" in transport.batch_encodings  # large batch bodies come back compressed
    converted = groups_to_dataproto(batch, pad_token_id=0, max_prompt_length=32, max_response_length=32)
    assert len(converted.data) == 8 and not converted.rejected

    # The API restarts and forgets us: the client registers again at the trainer's current step.
    client.step = 6
    api.stop()
    api.start()
    assert client.get_batch() is None
    assert client.registrations == 2
    assert client.status()["current_step"] == 6
    env2 = ScriptedEnv(api.url)
    assert env2.try_register()["starting_step"] == 6
    env2.post_list_gzip([simple_group(GROUP_SIZE), simple_group(GROUP_SIZE)])
    assert sum(len(g["tokens"]) for g in client.poll_batch(timeout=10)) == 8
    assert client.status()["current_step"] == 7
    client.close()


def test_poll_rides_out_an_api_outage(api):
    client = AtroposClient(api.url)
    client.register(registration())
    assert client.get_batch() is None
    env = ScriptedEnv(api.url)
    env.try_register()
    api.stop()

    def come_back():
        time.sleep(1.5)
        api.start()
        env2 = ScriptedEnv(api.url)
        while env2.try_register()["status"] != "success":  # released once the client re-registers and polls
            time.sleep(0.1)
        env2.post_list_gzip([simple_group(GROUP_SIZE), simple_group(GROUP_SIZE)])

    thread = threading.Thread(target=come_back)
    thread.start()
    batch = client.poll_batch(timeout=30, interval=0.1, max_interval=0.5)
    thread.join()
    assert sum(len(g["tokens"]) for g in batch) == 8
    assert client.registrations == 2


def test_poll_waits_double_from_first_interval_to_interval(api, monkeypatch):
    """While the batch forms, polls come 20 ms, 40 ms, ... apart, never more than `interval`: a batch completed just
    after a poll is picked up soon, and a long wait costs the API a few requests a second."""
    from atropos_verl.trainer import atropos_client

    client = AtroposClient(api.url)
    client.register(registration())
    assert client.get_batch() is None
    env = ScriptedEnv(api.url)
    assert env.try_register()["status"] == "success"
    slept: list[float] = []
    real_sleep = time.sleep

    def recording_sleep(seconds: float) -> None:
        slept.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(atropos_client.time, "sleep", recording_sleep)
    timer = threading.Timer(1.0, lambda: env.post_list_gzip([simple_group(GROUP_SIZE), simple_group(GROUP_SIZE)]))
    timer.start()
    batch = client.poll_batch(timeout=30, interval=0.2)
    timer.join()
    assert sum(len(g["tokens"]) for g in batch) == 8
    assert slept[:4] == pytest.approx([0.02, 0.04, 0.08, 0.16]) and max(slept) == pytest.approx(0.2), slept


def test_poll_timeout_names_url_and_queue(api):
    client = AtroposClient(api.url)
    client.register(registration())
    with pytest.raises(TimeoutError) as err:
        client.poll_batch(timeout=1.0)
    msg = str(err.value)
    assert api.url in msg and "queue holds 0 group(s)" in msg and "needs 8 sequences" in msg


def test_poll_timeout_when_api_is_down(tmp_path):
    api = AtroposAPIProcess(log_path=tmp_path / "api.log")  # never started
    client = AtroposClient(api.url)
    with pytest.raises(TimeoutError) as err:
        client.poll_batch(timeout=1.0, interval=0.1)
    assert api.url in str(err.value) and "unreachable" in str(err.value)


def test_an_api_that_is_not_ready_in_time_is_stopped(tmp_path):
    """`with AtroposAPIProcess()` never reaches __exit__ when the start fails, so the start stops what it started."""
    import psutil

    api = AtroposAPIProcess(log_path=tmp_path / "api.log")
    started: list[int] = []
    original = api.wait_ready

    def not_ready(timeout: float) -> None:
        started.append(api.proc.pid)
        original(0.0)  # the real readiness check, given no time: atroposlib's app cannot answer yet

    api.wait_ready = not_ready
    with pytest.raises(Exception, match="Atropos API"):
        with api:
            pytest.fail("entered although the API never became ready")
    assert started and api.proc is None
    assert not psutil.pid_exists(started[0]) or psutil.Process(started[0]).status() == psutil.STATUS_ZOMBIE


def test_client_errors_are_not_retried(api):
    client = AtroposClient(api.url)
    with pytest.raises(AtroposAPIError, match="422"):
        client.register(Registration(**{**registration().__dict__, "batch_size": "many"}))
    wrong = AtroposClient(api.url + "/no-such-prefix")
    start = time.monotonic()
    with pytest.raises(AtroposAPIError, match="404"):
        wrong.poll_batch(timeout=30)
    assert time.monotonic() - start < 5


def test_unregistered_client_fails_clearly(api):
    with pytest.raises(AtroposAPIError, match="not registered"):
        AtroposClient(api.url).get_batch()


def test_registration_counts_sequences_and_adds_one_token():
    reg = Registration.for_trainer(
        train_batch_size=16, group_size=8, max_prompt_length=32, max_response_length=8,
        checkpoint_dir="c", save_checkpoint_interval=5, starting_step=3, num_steps=100,
    )
    assert reg.batch_size == 128 and reg.max_token_len == 41 and reg.starting_step == 3


def test_a_stall_is_named_when_a_batch_worth_is_queued_but_cannot_be_cut(api):
    """atroposlib's own app (no gate in front): groups of 5 add up to a batch of 8 but never pack into one."""
    client = AtroposClient(api.url)
    client.group_size = GROUP_SIZE
    client.register(registration())
    seen = []
    client.get_batch()  # starts the trainer side
    with httpx.Client(base_url=api.url, timeout=10) as http:
        for _ in range(2):
            http.post("/scored_data", json=simple_group(5)).raise_for_status()
    with pytest.raises(TimeoutError, match="stalled"):
        client.poll_batch(timeout=2.5, interval=0.1, check_every=0.5, on_check=lambda h: seen.append(h.stalled))
    assert client.health.stalled and seen[-1] is True and client.health.queue_size == 2


def test_batch_5xx_are_counted_with_the_apis_text(api):
    """atroposlib's own app: a NaN score is queued, and every /batch that would carry it answers 500."""
    client = AtroposClient(api.url)
    client.register(registration())
    client.get_batch()
    poisoned = simple_group(GROUP_SIZE)
    poisoned["scores"][0] = float("nan")
    with httpx.Client(base_url=api.url, timeout=10) as http:
        http.post("/scored_data", content=json.dumps(poisoned), headers={"content-type": "application/json"})
        http.post("/scored_data", json=simple_group(GROUP_SIZE)).raise_for_status()
    with pytest.raises(TimeoutError):
        client.poll_batch(timeout=2.0, interval=0.1, max_interval=0.2)
    assert client.health.server_errors >= 1
    assert client.health.last_server_error.startswith("500")
