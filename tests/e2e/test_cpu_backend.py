# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""End to end on the CPU platform: verl's RayPPOTrainer + FSDP2/gloo workers + verl's own vLLM replica (hybrid mode).

One Ray cluster and one trainer serve every test of this module (module-scoped fixture); the tests run in file order
and the last one shuts everything down and checks that nothing is left behind.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import httpx
import psutil
import pytest

from atropos_verl.platform.ray_cluster import start_ray
from tests.e2e import sync_calls as sync

from . import cpu_harness as h

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

# Served logprobs vs. an HF fp32 forward pass of the actor's weights (fp32 actor and rollout). Measured max |diff|
# is ~3e-5 (oneDNN vs. ATen matmul accumulation order); 2e-4 leaves room without hiding a stale or partial sync,
# which moves logprobs by >1e-2 at this learning rate.
LOGPROB_TOL = 2e-4
HTTP_TIMEOUT = 60.0
FIXED_PROMPT = "12+34="


class Run:
    def __init__(self, tmp: Path) -> None:
        self.model_dir = h.build_model(tmp / "model")
        self.cluster = start_ray()
        self.closed = False
        try:
            self.timings = h.Timings()
            self.config = h.compose_config(h.run_overrides(self.model_dir))
            self.trainer, self.tokenizer = h.build_trainer(self.config)
            self.timings.timed("init_workers", self.trainer.init_workers)
            self.cluster.record_processes()
            self.address = self.trainer.llm_server_manager.get_addresses()[0]
            self.base = f"http://{self.address}"
            self.model_name = httpx.get(f"{self.base}/v1/models", timeout=HTTP_TIMEOUT).json()["data"][0]["id"]
            self.prompt_ids = self.tokenizer.encode(FIXED_PROMPT)
        except BaseException:
            self.close()
            raise

    def complete(self, **extra) -> dict:
        body = {
            "model": self.model_name,
            "prompt": self.prompt_ids,
            "max_tokens": 8,
            "temperature": 1.0,
            "seed": 1234,
            "logprobs": 1,
            "prompt_logprobs": 0,
            "return_token_ids": True,
            **extra,
        }
        r = httpx.post(f"{self.base}/v1/completions", json=body, timeout=HTTP_TIMEOUT)
        r.raise_for_status()
        return r.json()["choices"][0]

    def close(self) -> list[str]:
        if self.closed:
            return []
        self.closed = True
        return self.cluster.shutdown()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    state = Run(tmp_path_factory.mktemp("cpu_backend"))
    yield state
    state.close()


def served_logprobs(choice: dict, prompt_ids: list[int]) -> tuple[list[int], list[float]]:
    """(all token ids, logprob of every token after the first) from a /v1/completions choice."""
    prompt_lp = [
        entry[str(tok)]["logprob"] for tok, entry in zip(prompt_ids[1:], choice["prompt_logprobs"][1:], strict=True)
    ]
    gen_ids = choice["token_ids"]
    return prompt_ids + gen_ids, prompt_lp + list(choice["logprobs"]["token_logprobs"])


def test_plugin_active_in_every_process(run):
    """The entry point loads in Ray workers and vLLM's server actor, and vLLM still detects its CPU platform there."""
    import ray

    def probe(_self):
        import importlib.metadata as md

        from verl.plugin.platform import get_platform

        import atropos_verl.platform as plugin

        return plugin.is_active(), get_platform().device_name, md.version("vllm"), os.environ.get("VERL_PLATFORM")

    worker = run.trainer.actor_rollout_wg.workers[0]
    assert ray.get(worker.__ray_call__.remote(probe)) == (True, "cpu", "0.30.0+cpu", "cpu")

    def vllm_probe(_self):
        from vllm.platforms import current_platform

        return type(current_platform).__name__, probe(_self)

    server = run.trainer.llm_server_manager.get_replicas()[0].servers[0]
    platform_name, plugin_state = ray.get(server.__ray_call__.remote(vllm_probe))
    assert platform_name == "CpuPlatform"
    assert plugin_state[:3] == (True, "cpu", "0.30.0+cpu")
    assert importlib.metadata.version("vllm") == "0.30.0+cpu"


def test_vllm_model_runs_in_the_engine_core_process(run):
    """C4: the server actor starts one engine core, and the model worker runs inside it (no third vLLM process)."""
    import ray

    def tree(_self):
        import psutil as ps

        me = ps.Process()
        engines = [p for p in me.children() if "EngineCore" in " ".join(p.cmdline() + [p.name()])]
        return [(" ".join(e.cmdline()), [c.name() for c in e.children(recursive=True)]) for e in engines]

    server = run.trainer.llm_server_manager.get_replicas()[0].servers[0]
    engines = ray.get(server.__ray_call__.remote(tree))
    assert len(engines) == 1, engines
    assert engines[0][1] == [], engines  # verl's "mp" would add VLLM::Worker under the engine core

    def executor(_self):
        return os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING")

    assert ray.get(server.__ray_call__.remote(executor)) == "0"


def test_weight_sync_socket_is_scoped_to_this_cluster(run):
    """Both ends of the colocated weight sync use the job id scoped by this cluster's node id (sync_socket.py).

    The GRPO test below proves the two ends still meet; this one proves the path no longer depends on the Ray job
    id alone, which is `01000000` in every freshly started cluster.
    """
    import ray

    def sender_handle(worker_dict):
        workers = getattr(worker_dict, "worker_dict", {"self": worker_dict}).values()
        return next(w for w in workers if hasattr(w, "rollout")).rollout.zmq_handle

    def server_job_env(_self):
        return os.environ["VERL_RAY_JOB_ID"]

    context = ray.get_runtime_context()
    scoped = f"{context.get_job_id()}-{context.get_node_id()[:12]}"
    server = run.trainer.llm_server_manager.get_replicas()[0].servers[0]
    assert ray.get(server.__ray_call__.remote(server_job_env)) == scoped
    handle = ray.get(run.trainer.actor_rollout_wg.workers[0].__ray_call__.remote(sender_handle))
    assert handle == f"ipc:///tmp/rl-colocate-zmq-{scoped}-replica-0-rank-0.sock"


def test_replicas_are_paused_until_weight_sync(run):
    """After init_workers the replicas are asleep: health answers, generation waits for update_weights()."""
    assert httpx.get(f"{run.base}/health", timeout=HTTP_TIMEOUT).status_code == 200
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{run.base}/v1/completions",
            json={"model": run.model_name, "prompt": run.prompt_ids, "max_tokens": 1},
            timeout=httpx.Timeout(3.0, connect=5.0),
        )


def test_http_chat_and_completion_after_first_sync(run):
    run.timings.timed("weight_sync", sync.update_weights, run.trainer.checkpoint_manager, 1, timeout_s=300)
    choice = run.complete()
    assert len(choice["token_ids"]) == 8
    assert all(lp <= 0 for lp in choice["logprobs"]["token_logprobs"])
    chat = httpx.post(
        f"{run.base}/v1/chat/completions",
        json={
            "model": run.model_name,
            "messages": [{"role": "user", "content": FIXED_PROMPT}],
            "max_tokens": 8,
            "logprobs": True,
            "top_logprobs": 2,
            "return_token_ids": True,
        },
        timeout=HTTP_TIMEOUT,
    )
    chat.raise_for_status()
    c = chat.json()["choices"][0]
    assert c["token_ids"] and len(c["logprobs"]["content"]) == len(c["token_ids"])
    assert all(item["logprob"] <= 0 for item in c["logprobs"]["content"])


def test_grpo_update_then_sync_serves_new_weights(run):
    before_ids, before_lp = served_logprobs(run.complete(), run.prompt_ids)

    sync.sleep_replicas(run.trainer.checkpoint_manager)
    metrics = run.timings.timed("grpo_step", h.grpo_step, run.trainer, h.make_batch(run.tokenizer, seed=0))
    assert metrics["actor/kl_loss"] == pytest.approx(0.0, abs=1e-6)  # actor == reference before the first update
    run.timings.timed("weight_sync", sync.update_weights, run.trainer.checkpoint_manager, 2, timeout_s=300)

    ids, served = served_logprobs(run.complete(), run.prompt_ids)
    reference = h.hf_token_logprobs(run.model_dir, h.actor_weights(run.trainer), ids)
    diff = max(abs(a - b) for a, b in zip(served, reference, strict=True))
    print(f"served vs HF logprobs over {len(served)} tokens: max |diff| = {diff:.2e}")
    assert diff < LOGPROB_TOL, (diff, served, reference)
    # The sync really changed the served model (a no-op sync would leave these equal).
    old_reference = h.hf_token_logprobs(run.model_dir, h.actor_weights(run.trainer), before_ids)
    assert max(abs(a - b) for a, b in zip(before_lp, old_reference, strict=True)) > 1e-2

    sync.sleep_replicas(run.trainer.checkpoint_manager)
    metrics2 = run.timings.timed("grpo_step", h.grpo_step, run.trainer, h.make_batch(run.tokenizer, seed=1))
    assert metrics2["actor/kl_loss"] > 1e-6  # the reference model is really separate from the updated actor
    run.timings.timed("weight_sync", sync.update_weights, run.trainer.checkpoint_manager, 3, timeout_s=300)
    assert run.complete()["token_ids"]


def test_shutdown_leaves_no_process_and_no_shm(run):
    run.cluster.record_processes()
    pids = dict(run.cluster.known_pids)
    assert pids, "no Ray/vLLM processes were recorded"
    ours_before = set(run.cluster.shm.ours)
    removed = run.close()
    alive = []
    for pid, created in pids.items():
        try:
            p = psutil.Process(pid)
            if abs(p.create_time() - created) < 1e-3 and p.status() != psutil.STATUS_ZOMBIE:
                alive.append((pid, p.name()))
        except psutil.Error:
            continue
    assert not alive, alive
    assert not run.cluster.descendants()
    leftover = run.cluster.shm.new_segments() & (ours_before | set(removed))
    assert not leftover, leftover
    assert not run.cluster.temp_dir.exists()
