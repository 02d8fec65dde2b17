# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Three real training steps on the CPU platform: Atropos API, `python -m atropos_verl.trainer.main` with verl's vLLM
replica and a tiny model, and a real Atropos environment generating against the published endpoints."""

from __future__ import annotations

import ast
import math

import pytest

from atropos_verl.launch.api_server import AtroposAPIProcess
from tests.trainer.e2e_run import GROUP_SIZE, TrainerRun, run_trainer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

STEPS = 3


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> TrainerRun:
    from tests.e2e.cpu_harness import build_model

    work = tmp_path_factory.mktemp("trainer_e2e")
    model_dir = build_model(work / "model")
    with AtroposAPIProcess(log_path=work / "api.log") as api:
        result = run_trainer(model_dir, work, steps=STEPS, api=api, post_malformed=True)
    assert result.returncode == 0, result.log()
    return result


def by_step(run: TrainerRun) -> dict[int, dict]:
    return {int(r["step"]): r["data"] for r in run.metrics}


def test_three_steps_with_finite_losses(run):
    steps = by_step(run)
    assert sorted(steps) == [1, 2, 3], run.log()
    for step, m in steps.items():
        for key in ("actor/pg_loss", "actor/kl_loss", "actor/grad_norm"):
            assert math.isfinite(m[key]), (step, key, m[key])
        assert m["timing_s/atropos_wait"] >= 0 and m["timing_s/sync"] > 0 and m["timing_s/train"] > 0


def test_verls_generation_side_actors_are_not_started(run):
    """Environments generate: verl's agent loop, reward loop and load balancer would be three idle processes."""
    assert {"ray::WorkerDict", "ray::DrainingVLLMHttpServer"} <= run.ray_processes, run.ray_processes
    unused = {"ray::AgentLoopWorker", "ray::RewardLoopWorker", "ray::GlobalRequestLoadBalancer"}
    assert not unused & run.ray_processes, run.ray_processes


def test_servers_answer_the_warm_up_on_both_routes(run):
    """verl's servers answer a token-id completion and a chat completion before the environment's first burst."""
    log = (run.work / "trainer.log").read_text(errors="replace")
    line = next(line for line in log.splitlines() if "rollout servers warmed up" in line)
    warmed = ast.literal_eval(line.split("(seconds per route): ", 1)[1])
    assert warmed and all(isinstance(s, float) for routes in warmed.values() for s in routes.values()), warmed
    assert all(set(routes) == {"/v1/completions", "/v1/chat/completions"} for routes in warmed.values()), warmed


def test_kl_grows_from_zero(run):
    steps = by_step(run)
    assert steps[1]["actor/kl_loss"] == pytest.approx(0.0, abs=1e-6)
    assert steps[3]["actor/kl_loss"] > 0


def test_served_weights_change_between_steps(run):
    probes = [tuple(round(x, 5) for x in r["logprobs"]) for r in run.env_records if r["kind"] == "probe"]
    assert len(probes) >= 2
    assert len(set(probes)) >= 2, (
        "the probe prompt was served with identical logprobs throughout: no weight reached vLLM"
    )


def test_no_request_aborted_during_syncs(run):
    reasons = [r["reason"] for r in run.env_records if r["kind"] == "finish"]
    assert reasons and set(reasons) <= {"stop", "length"}, sorted(set(reasons))
    for m in by_step(run).values():
        assert m["sync/aborted_requests"] == 0


def test_malformed_group_is_quarantined_with_reason(run):
    records = [r for r in run.quarantine if r["reason"] == "mask_length_mismatch"]
    assert len(records) == 1, run.quarantine
    assert records[0]["group"]["scores"] == [0.0, 1.0, 0.0, 1.0]
    assert len(records[0]["group"]["tokens"]) == GROUP_SIZE
    total = sum(m.get("atropos/rejected/mask_length_mismatch", 0) for m in by_step(run).values())
    assert total == 1


def test_api_and_trainer_agree_on_the_step(run):
    # The API counts batches when it cuts them from its queue, so with several batches queued at one poll it runs
    # ahead of the trainer (atroposlib/api/server.py get_batch) and stays ahead by the batches it holds uncollected.
    # It never falls behind, never goes backwards, and does not move once the trainer has stopped polling.
    steps = by_step(run)
    api_steps = [steps[s]["atropos/api_step"] for s in (1, 2, 3)]
    assert all(api >= s for api, s in zip(api_steps, (1, 2, 3), strict=True)), api_steps
    assert api_steps == sorted(api_steps), api_steps
    assert run.api_status["current_step"] == api_steps[-1]


def test_offpolicy_metrics_from_inference_logprobs(run):
    steps = by_step(run)
    for m in steps.values():
        assert any(k.startswith("rollout_corr/rollout_is") for k in m), sorted(m)
        assert "training/rollout_probs_diff_mean" in m
    # Step 1 trains on data sampled by the initial weights, which the actor still has: fp32 actor and fp32 vLLM agree
    # to ~3e-5 on the same weights, so a large gap would mean misaligned logprobs, not staleness.
    assert steps[1]["training/rollout_probs_diff_mean"] < 1e-3
