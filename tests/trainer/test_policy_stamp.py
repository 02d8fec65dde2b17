# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The rollout servers' policy-version stamp (the ASGI middleware verl hands vLLM) and the staleness bound on it."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from atropos_verl.group_rules import Reason
from atropos_verl.trainer.config_check import STAMP_MIDDLEWARE, mode_problems
from atropos_verl.trainer.drain import overlap_metrics, policy_stamp
from atropos_verl.trainer.staleness import check_staleness, effective_max_staleness
from atropos_verl.wire import POLICY_VERSION_HEADER, POLICY_VERSION_KEY


async def _completion(request):
    body = await request.json()
    if body.get("bad"):
        return JSONResponse({"error": "bad request"}, status_code=400)
    reasons = body.get("finish_reasons", ["stop"])
    return JSONResponse({"choices": [{"text": "x", "finish_reason": r} for r in reasons],
                         "usage": {"prompt_tokens": 3, "completion_tokens": 7}})


async def _stream(request):
    async def chunks():
        yield b'data: {"usage": {"completion_tokens": 2}}\n\n'
        yield b"data: [DONE]\n\n"

    return StreamingResponse(chunks(), media_type="text/event-stream")


def stamped_app() -> Starlette:
    app = Starlette(routes=[
        Route("/v1/completions", _completion, methods=["POST"]),
        Route("/v1/chat/completions", _stream, methods=["POST"]),
        Route("/health", lambda request: PlainTextResponse("ok")),
    ])
    app.add_middleware(policy_stamp.PolicyVersionStamp)
    return app


@pytest.fixture
def fresh_state(monkeypatch):
    monkeypatch.setattr(policy_stamp, "_STATE", {"version": None, "answered": 0, "completion_tokens": 0, "aborted": 0})


def test_answers_carry_the_version_and_completions_are_counted(fresh_state):
    assert policy_stamp.MIDDLEWARE == STAMP_MIDDLEWARE  # what the trainer's defaults hand vLLM
    client = TestClient(stamped_app())
    assert POLICY_VERSION_HEADER not in client.get("/health").headers  # nothing pushed yet: no claim
    policy_stamp.set_version(4)
    assert client.get("/health").headers[POLICY_VERSION_HEADER] == "4"
    answer = client.post("/v1/completions", json={"prompt": [1]})
    assert answer.headers[POLICY_VERSION_HEADER] == "4" and answer.json()["usage"]["completion_tokens"] == 7
    refused = client.post("/v1/completions", json={"bad": True})
    assert refused.status_code == 400 and refused.headers[POLICY_VERSION_HEADER] == "4"
    streamed = client.post("/v1/chat/completions", json={})
    assert streamed.headers[POLICY_VERSION_HEADER] == "4"
    policy_stamp.set_version(5)
    assert client.post("/v1/completions", json={}).headers[POLICY_VERSION_HEADER] == "5"
    # 3 completions answered (the 400 is not one), 7 + 2 + 7 tokens; /health is not a completion.
    assert policy_stamp.stats() == {"version": 5, "answered": 3, "completion_tokens": 16, "aborted": 0}
    # Choices a sync cut short are counted one by one.
    client.post("/v1/completions", json={"finish_reasons": ["abort", "length", "abort"]})
    assert policy_stamp.stats()["aborted"] == 2


def test_overlap_is_the_difference_of_two_readings():
    before = [{"version": 1, "answered": 10, "completion_tokens": 80}, {"version": 1, "answered": 0,
                                                                         "completion_tokens": 0}]
    after = [{"version": 1, "answered": 14, "completion_tokens": 112}, {"version": 1, "answered": 2,
                                                                         "completion_tokens": 9}]
    assert overlap_metrics(before, after) == {"atropos/overlap/completions_during_update": 6.0,
                                              "atropos/overlap/tokens_during_update": 41.0}
    assert overlap_metrics([], []) == {}  # servers that do not stamp (SGLang): no claim


def _group(version=None, n=2):
    params = {} if version is None else {POLICY_VERSION_KEY: version}
    return {"tokens": [[1, 2, 3]] * n, "masks": [[-100, 2, 3]] * n, "scores": [1.0] * n, "generation_params": params}


def test_groups_over_the_bound_or_without_a_version_are_rejected_with_a_reason():
    groups = [_group(9), _group(8), _group(6), _group(None), _group(True), _group(10, n=4)]
    # Step 10 updates the weights of version 9.
    check = check_staleness(groups, current_version=9, bound=2)
    assert check.lags == [0, 1, 3, None, None, -1]
    assert check.rejected == [(2, Reason.STALE), (3, Reason.NO_POLICY_VERSION), (4, Reason.NO_POLICY_VERSION)]
    metrics = check.metrics(groups, 2)
    assert metrics["atropos/lag/max"] == 3.0 and metrics["atropos/lag/min"] == -1.0
    assert metrics["atropos/lag/mean"] == pytest.approx((0 * 2 + 1 * 2 + 3 * 2 - 1 * 4) / 10)
    assert metrics["atropos/lag/over_bound_share"] == pytest.approx(2 / 14)
    assert metrics["atropos/lag/sequences_without_version"] == 4.0
    # Hybrid mode measures and rejects nothing.
    assert check_staleness(groups, 9, None).rejected == []


def test_the_bound_defaults_by_mode():
    assert effective_max_staleness({"mode": "hybrid", "max_staleness": None}) is None
    assert effective_max_staleness({"mode": "async", "max_staleness": None}) == 2
    assert effective_max_staleness({"mode": "async", "max_staleness": 0}) == 0
    assert effective_max_staleness({"mode": "hybrid", "max_staleness": 3}) == 3


def _cfg(**atropos):
    return OmegaConf.create({
        "atropos": {"mode": "async", "max_staleness": None, **atropos},
        "actor_rollout_ref": {"rollout": {"name": "vllm", "free_cache_engine": False,
                                          "engine_kwargs": {"vllm": {"middleware": STAMP_MIDDLEWARE}}}},
    })


def test_async_mode_names_what_it_needs():
    assert mode_problems(_cfg()) == []
    assert "atropos.mode='fast'" in mode_problems(_cfg(mode="fast"))[0]
    assert "max_staleness=-1" in mode_problems(_cfg(max_staleness=-1))[0]
    sglang = _cfg()
    sglang.actor_rollout_ref.rollout.name = "sglang"
    assert "rollout.name=vllm" in mode_problems(sglang)[0]
    replaced = _cfg()
    replaced.actor_rollout_ref.rollout.engine_kwargs.vllm.middleware = "mine.Middleware"
    assert "it was replaced" in mode_problems(replaced)[0]
    freeing = _cfg()
    freeing.actor_rollout_ref.rollout.free_cache_engine = True
    assert "free_cache_engine" in mode_problems(freeing)[0]
    hybrid = _cfg(mode="hybrid")
    hybrid.actor_rollout_ref.rollout.free_cache_engine = True
    assert mode_problems(hybrid) == []


def test_async_mode_keeps_server_memory_unless_the_user_said_otherwise():
    from atropos_verl.trainer.serving import FREE_CACHE_KEY, apply_mode_defaults

    cfg = _cfg()
    cfg.actor_rollout_ref.rollout.free_cache_engine = True
    apply_mode_defaults(cfg, [], cpu_platform=True)
    assert OmegaConf.select(cfg, FREE_CACHE_KEY) is False
    cfg.actor_rollout_ref.rollout.free_cache_engine = True
    apply_mode_defaults(cfg, [f"{FREE_CACHE_KEY}=true"], cpu_platform=True)
    assert OmegaConf.select(cfg, FREE_CACHE_KEY) is True  # then config_check reports it
