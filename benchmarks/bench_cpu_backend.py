# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Benchmark of the CPU backend: verl's RayPPOTrainer + FSDP2/gloo + verl's own vLLM replica on CPU, tiny model.

Prints: Ray start, trainer.init_workers() (and the vLLM server start inside it), GRPO step time (first, steady),
weight-sync time (first, then steady), HTTP completion latency. Targets on a 2-core box: steady weight sync < 0.2 s,
steady GRPO step < 2 s, init < 120 s.

    flock /tmp/atropos-verl-heavy.lock timeout 900 .venv/bin/python benchmarks/bench_cpu_backend.py [--steps 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from atropos_verl.platform.ray_cluster import start_ray  # noqa: E402
from tests.e2e import cpu_harness as h  # noqa: E402
from tests.e2e import sync_calls as sync  # noqa: E402


def _time_server_start(timings: dict[str, float]) -> None:
    """Measure LLMServerManager.create (vLLM replicas launch) inside init_workers; behaviour unchanged."""
    from verl.workers.rollout import llm_server

    cls = llm_server.LLMServerManager
    original = cls.create.__func__

    def create(klass, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(klass, *args, **kwargs)
        finally:
            timings["vllm_server_start"] = time.perf_counter() - t0

    cls.create = classmethod(create)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5, help="GRPO steps (each followed by a weight sync)")
    ap.add_argument("--ranks", type=int, default=1, help="FSDP ranks (= vLLM replicas)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-cpu-"))
    model_dir = h.build_model(tmp / "model")
    t = {}
    t0 = time.perf_counter()
    cluster = start_ray()
    t["ray_start"] = time.perf_counter() - t0
    try:
        config = h.compose_config(h.run_overrides(model_dir, n_ranks=args.ranks))
        trainer, tokenizer = h.build_trainer(config)
        _time_server_start(t)
        t0 = time.perf_counter()
        trainer.init_workers()
        t["init_workers"] = time.perf_counter() - t0
        mgr = trainer.checkpoint_manager
        base = f"http://{trainer.llm_server_manager.get_addresses()[0]}"
        model_name = httpx.get(f"{base}/v1/models", timeout=30).json()["data"][0]["id"]
        body = {"model": model_name, "prompt": tokenizer.encode("12+34="), "max_tokens": 8, "logprobs": 1}

        syncs, steps, http = [], [], []
        for step in range(args.steps + 1):
            t0 = time.perf_counter()
            sync.update_weights(mgr, step, timeout_s=300)
            syncs.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            httpx.post(f"{base}/v1/completions", json=body, timeout=60).raise_for_status()
            http.append(time.perf_counter() - t0)
            if step == args.steps:
                break
            sync.sleep_replicas(mgr)
            t0 = time.perf_counter()
            metrics = h.grpo_step(trainer, h.make_batch(tokenizer, seed=step))
            steps.append(time.perf_counter() - t0)
            print(f"step {step}: pg_loss={metrics['actor/pg_loss']:.4f} kl_loss={metrics['actor/kl_loss']:.5f}")
    finally:
        t0 = time.perf_counter()
        removed = cluster.shutdown()
        t["shutdown"] = time.perf_counter() - t0
        print(f"removed our /dev/shm segments: {removed}")

    def steady(xs: list[float]) -> float:
        return statistics.median(xs[1:]) if len(xs) > 1 else float("nan")

    print(f"\n== CPU backend benchmark (tiny Qwen2, fp32, {args.ranks} rank(s)) ==")
    print(f"ray start                      {t['ray_start']:7.2f} s")
    print(f"init_workers (Ray workers+vLLM){t['init_workers']:7.2f} s   target < 120 s")
    print(f"  of which vLLM server start   {t.get('vllm_server_start', float('nan')):7.2f} s")
    print(f"GRPO step first                {steps[0]:7.3f} s")
    print(f"GRPO step steady (median)      {steady(steps):7.3f} s   target < 2 s")
    print(f"weight sync first              {syncs[0]:7.3f} s")
    print(f"weight sync after (median)     {steady(syncs):7.3f} s   target < 0.2 s")
    print(f"HTTP completion first / warm   {http[0]:7.3f} / {steady(http):.3f} s")
    print(f"shutdown                       {t['shutdown']:7.2f} s")


if __name__ == "__main__":
    main()
