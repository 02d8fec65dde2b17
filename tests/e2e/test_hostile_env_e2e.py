# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""A hostile environment against a live `atropos-verl run`: every malformed post is refused at the API's door or
quarantined, none is trained on, the good groups posted between them are all trained, and the run finishes."""

from __future__ import annotations

import json

import httpx
import pytest

from atropos_verl.api_side.gate import GateSettings
from atropos_verl.launch.processes import stop_process_group
from tests.e2e.test_launcher_e2e import assert_nothing_left, metric_steps, output, start_run, wait_for
from tests.hostile_posts import good_group, malformed_posts

pytestmark = pytest.mark.e2e

# Enough steps that the run outlasts the posts by far: they take seconds (a 64 MiB body, a gzip bomb) while a cpu_tiny
# step takes ~0.6 s on an idle machine, and good groups posted near the last step would still be queued (or in a batch
# the API cut ahead) when the run ends.
STEPS = 80
GOOD = 8  # 8 groups x 4 sequences: four of the run's batches


def test_hostile_posts_never_train_and_good_groups_all_do(tmp_path):
    run_dir = tmp_path / "runs" / "cpu_tiny"
    trace = tmp_path / "trace.jsonl"
    proc = start_run(tmp_path, f"trainer.total_training_steps={STEPS}", f"atropos.batch_trace={trace}")
    try:
        wait_for(lambda: 1 in metric_steps(run_dir), 600, proc, "the first training step", tmp_path)
        gate = GateSettings.load(str(run_dir / "api_gate.json"))
        api_url = json.loads((run_dir / "launch.json").read_text())["api_url"]
        posts = malformed_posts(gate.limits["vocab_size"], gate.max_prompt_length, gate.max_response_length,
                                gate.max_body_bytes, gate.max_decompressed_bytes, registered_env_id=0)
        assert len(posts) >= 30
        statuses: dict[str, int] = {}
        good = [good_group(k) for k in range(GOOD)]
        with httpx.Client(base_url=api_url, timeout=60) as http:
            for k, post in enumerate(posts):
                statuses[post.name] = post.send(http).status_code
                if k % 5 == 0 and k // 5 < GOOD:
                    assert http.post("/scored_data", json=good[k // 5]).status_code == 200
        posted_at = max(metric_steps(run_dir), default=0)
        assert proc.wait(timeout=900) == 0, output(tmp_path)
    finally:
        if proc.poll() is None:
            stop_process_group(proc, grace=15)

    refused = sum(400 <= code < 500 for code in statuses.values())
    records = [json.loads(line) for line in (run_dir / "quarantine.jsonl").read_text().splitlines()]
    hostile_quarantined = [r for r in records if r["source"] == "trainer" and _is_hostile(r["group"])]
    print(f"variants {len(posts)}, refused at the door {refused}, quarantined by the trainer "
          f"{len(hostile_quarantined)}; door records {sum(r['source'] == 'api' for r in records)}")
    assert refused + len(hostile_quarantined) == len(posts), statuses

    trained = [json.loads(line) for line in trace.read_text().splitlines()]
    prompts = {tuple(r["prompt"]) for r in trained}
    assert not [p for p in prompts if p[:1] in ((5,), (7,))], "a malformed group was trained on"
    good_prompts = {tuple(g["tokens"][0][:4]) for g in good}
    good_quarantined = [(r["step"], r["reason"]) for r in records
                        if not _is_hostile(r["group"]) and tuple(r["group"]["tokens"][0][:4]) in good_prompts]
    assert good_quarantined == [], good_quarantined
    trained_at = sorted({r["step"] for r in trained if tuple(r["prompt"]) in good_prompts})
    assert STEPS - posted_at >= 10, f"the posts ended at step {posted_at}, too close to the last ({STEPS}): raise STEPS"
    assert good_prompts <= prompts, (f"good groups lost: {len(good_prompts - prompts)} of {GOOD} (the others trained "
                                     f"at steps {trained_at})\n{output(tmp_path)}")
    assert metric_steps(run_dir)[-1] == STEPS
    assert_nothing_left(run_dir, proc)


def _is_hostile(group: dict) -> bool:
    tokens = group.get("tokens") if isinstance(group, dict) else None
    return not tokens or not isinstance(tokens[0], list) or tokens[0][:1] in ([5], [7])
