# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Environments that used to fail for causes of the product's own, through `atropos-verl run` together:
- `data-env/reads_its_data` opens its data relative to the checkout's root, from a folder whose name is not a Python
  identifier: it starts in the root and loads;
- `no_evaluate` leaves `evaluate` abstract: it trains with evaluation off.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.e2e.test_launcher_e2e import CONFIG, assert_nothing_left, metric_steps, output, start_run

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHECKOUT = ROOT / "tests" / "fixtures" / "conformance"
STEPS = 4
ENVS = {
    "reads_its_data": "environments/data-env/reads_its_data.py",
    "no_evaluate": "environments/no_evaluate.py",
}


def test_environments_with_product_causes_train(tmp_path, monkeypatch):
    monkeypatch.setenv("CONFORMANCE_TRAP_URL", "http://127.0.0.1:9/v1")
    tiny = yaml.safe_load(CONFIG.read_text())
    config = {**tiny, "run_name": "causes", "output_dir": str(tmp_path / "runs"), "atropos_checkout": str(CHECKOUT),
              "environments": [{"env": path, "name": name} for name, path in ENVS.items()]}
    path = tmp_path / "causes.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    run_dir = tmp_path / "runs" / "causes"
    proc = start_run(tmp_path, f"trainer.total_training_steps={STEPS}", config=path)  # cwd: not the checkout
    assert proc.wait(timeout=900) == 0, output(tmp_path)
    assert metric_steps(run_dir)[-1] == STEPS
    assert_nothing_left(run_dir, proc)

    door = json.loads((run_dir / "api_door.json").read_text())
    assert door["rejected"] == 0, door  # nothing over the response cap
    for name in ENVS:
        status = json.loads((run_dir / "envs" / f"{name}.status.json").read_text())
        assert status["groups_posted"] > 0 and status["last_error"] is None, (name, status)
    budget = json.loads((run_dir / "envs" / "no_evaluate.status.json").read_text())
    assert budget["token_budget"]["meaning"] == "response" and budget["token_budget"]["response_cap"] == 8
    assert budget["token_budget"]["max_tokens_cap"] == 8 - budget["token_budget"]["template_tail"] - 1
    assert budget["max_tokens_clamped"] > 0  # it asks for 6 tokens per request: more than fits with the tail
    assert budget["items_started"] >= budget["groups_posted"] > 0
    logs = {name: (run_dir / "logs" / f"{name}.log").read_text(errors="replace") for name in ENVS}
    assert "NoEvaluateEnv does not implement evaluate(): it runs with evaluation off" in logs["no_evaluate"]
    assert "FileNotFoundError" not in logs["reads_its_data"]


def test_an_environment_whose_requests_exceed_the_served_context_ends_the_run_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("CONFORMANCE_TRAP_URL", "http://127.0.0.1:9/v1")
    tiny = yaml.safe_load(CONFIG.read_text())
    config = {**tiny, "run_name": "long", "output_dir": str(tmp_path / "runs"), "atropos_checkout": str(CHECKOUT),
              "environments": [{"env": "environments/over_context.py", "name": "over_context"}],
              "supervision": {**tiny["supervision"], "max_restarts": 1}}
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    run_dir = tmp_path / "runs" / "long"
    proc = start_run(tmp_path, config=path)
    assert proc.wait(timeout=600) != 0, output(tmp_path)
    assert_nothing_left(run_dir, proc)
    end = output(tmp_path)
    assert "over_context exited with code 1 after 1 restart(s) (limit 1): OverContextError: the servers refused " \
           "requests for 3 different prompts" in end, end[-3000:]
    assert "as longer than the context they serve" in end
    assert "maximum context length" in end
    status = json.loads((run_dir / "envs" / "over_context.status.json").read_text())
    assert status["over_context"] >= 3 and status["last_error"].startswith("OverContextError")
