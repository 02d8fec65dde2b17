# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The conformance environments (tests/fixtures/conformance), unmodified, through `atropos-verl run` on the CPU stack.

One run with three environment processes covers: per-item `collect_trajectory` (empty lists), a two-turn chat with
the environment's turn masked inside the completion (`tokenize_for_trainer`), ManagedServer's token path, a plain
`chat_completion` that tokenizes itself, a `config_init` with two default servers, a `ServerBaseline`, a single
default server, a package with relative and checkout-rooted imports, a group size other than `rollout.n`, a
temperature reported in `generation_params` and one only requested, and posting through `/scored_data_list`.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from atropos_verl.group_rules import Reason
from atropos_verl.trainer.staleness import ASYNC_DEFAULT_MAX_STALENESS
from atropos_verl.wire import POLICY_VERSION_KEY
from tests.e2e.test_launcher_e2e import assert_nothing_left, metric_steps, output, start_run

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHECKOUT = ROOT / "tests" / "fixtures" / "conformance"
# atroposlib cuts batches from packs of the largest group size (`grab_exact_from_heterogeneous_queue`):
# managed_baseline's 2-sequence groups form a pack only once two are queued, which can be after the first 4 batches
# were cut from other packs. 6 steps leave room for it.
STEPS = 6
ENVS = {
    "per_item_two_servers": "environments/per_item_two_servers.py",
    "managed_baseline": "environments/managed_baseline.py",
    "self_tokenizing": "environments/chat_pkg/self_tokenizing.py",
}


class Trap(BaseHTTPRequestHandler):
    """The environments' own default servers: it counts whatever reaches it."""

    hits: list[str] = []

    def log_message(self, *args):
        pass

    def _hit(self):
        type(self).hits.append(f"{self.command} {self.path}")
        self.send_response(503)
        self.end_headers()

    do_GET = do_POST = _hit  # noqa: N815


def run_config(tmp_path: Path, mode: str) -> Path:
    tiny = yaml.safe_load((ROOT / "configs" / "cpu_tiny.yaml").read_text())
    verl = [o for o in tiny["verl"] if not o.startswith(("data.max_", "trainer.total_training_steps"))]
    verl += [
        "data.max_prompt_length=64",
        "data.max_response_length=64",
        f"trainer.total_training_steps={STEPS}",
        f"atropos.batch_trace={tmp_path / 'trace.jsonl'}",
        "atropos.poll_timeout=300",
    ]
    config = {
        "run_name": "conformance",
        "mode": mode,
        "output_dir": str(tmp_path / "runs"),
        "build_model": {**tiny["build_model"], "size": {**tiny["build_model"]["size"], "max_position_embeddings": 256}},
        "atropos_checkout": str(CHECKOUT),
        # The slow two-turn environment is guaranteed a group in every batch (Atropos' own mechanism for a
        # multi-environment share); the other two fill the rest, so every environment trains in a 6-step run.
        "environments": [
            {"env": path, "name": name, **({"min_batch_allocation": 0.5} if name == "per_item_two_servers" else {})}
            for name, path in ENVS.items()
        ],
        "supervision": tiny["supervision"],
        "verl": verl,
    }
    path = tmp_path / "conformance.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


@pytest.mark.parametrize("mode", ["hybrid", "async"])
def test_conformance_environments_train_unmodified(tmp_path, monkeypatch, mode):
    trap = ThreadingHTTPServer(("127.0.0.1", 0), Trap)
    threading.Thread(target=trap.serve_forever, daemon=True).start()
    Trap.hits = []
    monkeypatch.setenv("CONFORMANCE_TRAP_URL", f"http://127.0.0.1:{trap.server_address[1]}/v1")
    monkeypatch.setenv("CONFORMANCE_RECORD_DIR", str(tmp_path))
    config = run_config(tmp_path, mode)
    run_dir = tmp_path / "runs" / "conformance"
    proc = start_run(tmp_path, config=config)
    try:
        assert proc.wait(timeout=1200) == 0, output(tmp_path)
    finally:
        trap.shutdown()
    assert metric_steps(run_dir)[-1] == STEPS
    assert Trap.hits == [], f"requests reached the environments' own default servers: {Trap.hits[:5]}"

    quarantined = _jsonl(run_dir / "quarantine.jsonl")
    if mode == "hybrid":
        assert quarantined == [], output(tmp_path)
    else:
        # Three environments with group sizes 2, 4 and 4 share 8-sequence batches, and the slow one has a guaranteed
        # share: the API can leave a small group queued behind others for more updates than the bound allows. The
        # trainer rejects exactly those, as stale, and keeps them.
        for q in quarantined:
            version = q["group"]["generation_params"][POLICY_VERSION_KEY]
            assert q["reason"] == Reason.STALE and q["source"] == "trainer", q["reason"]
            assert q["step"] - 1 - version > ASYNC_DEFAULT_MAX_STALENESS, (q["step"], version)
    trained = _jsonl(tmp_path / "trace.jsonl")
    by_env = {name: [t for t in trained if t["env"] == name] for name in ENVS}
    assert all(by_env.values()), {k: len(v) for k, v in by_env.items()}
    # whichever client each environment's server class uses, its groups carry the policy version that answered them
    # (in async mode a group without one would have been quarantined as policy_version_missing)
    versions = {name: sorted({r["policy_version"] for r in rows}) for name, rows in by_env.items()}
    assert all(v and None not in v for v in versions.values()), versions
    lags = sorted({r["step"] - 1 - r["policy_version"] for r in trained})  # weights of step s-1 trained step s
    assert lags[0] >= 0 and (mode == "hybrid" or lags[-1] <= 2), lags  # async: within the default bound

    # the masks the environments posted are the positions that were trained
    posted = {name: _jsonl(tmp_path / f"{name}.jsonl") for name in ENVS}
    for name, rows in by_env.items():
        sent = {}
        for group in posted[name]:
            for tokens, masks in zip(group["tokens"], group["masks"], strict=True):
                sent[tuple(tokens)] = masks
        for row in rows:
            tokens = tuple(row["prompt"] + row["response"])
            assert tokens in sent, f"{name}: trained a sequence the environment never posted"
            env_mask = sent[tokens][len(row["prompt"]):]
            assert row["response_mask"] == [int(m != -100) for m in env_mask], name
    # the API's guaranteed share holds for every batch it served (a stale group rejected by the trainer included)
    per_item = [r["step"] for r in trained if r["env"] == "per_item_two_servers"]
    per_item += [q["step"] for q in quarantined if q["env"] == "per_item_two_servers" for _ in q["group"]["tokens"]]
    shares = [per_item.count(step) for step in range(1, STEPS + 1)]
    assert all(share >= 4 for share in shares), shares  # min_batch_allocation 0.5 of 8 sequences: a group each step
    multi_turn = [r for r in by_env["per_item_two_servers"] if 0 in r["response_mask"]]
    assert multi_turn, "the environment's turn inside the completion was not masked"

    # group sizes and temperatures as the environments sampled them
    sizes = {name: {sum(1 for r in rows if r["uid"] == u) for u in {r["uid"] for r in rows}} for name, rows in
             by_env.items()}
    assert sizes["managed_baseline"] == {2} and sizes["self_tokenizing"] == {4}
    temps = {name: sorted({r["temperature"] for r in rows}) for name, rows in by_env.items()}
    assert temps["managed_baseline"] == pytest.approx([0.7])  # reported in generation_params
    assert temps["self_tokenizing"] == pytest.approx([0.8])  # requested, not reported: stamped by the env side
    assert temps["per_item_two_servers"] == [1.0]  # none requested: verl's rollout.temperature, the servers' default

    # every environment was routed to verl's servers only, registered and posting
    for name in ENVS:
        status = json.loads((run_dir / "envs" / f"{name}.status.json").read_text())
        verl = yaml.safe_load((run_dir / "envs" / f"{name}.yaml").read_text())["openai"]
        verl = [verl] if isinstance(verl, dict) else verl
        assert status["servers"] == [e["base_url"] for e in verl], name
        assert status["groups_posted"] > 0 and status["send_failures"] == 0, status
    out = output(tmp_path)
    assert f"quarantine: {len(quarantined)} of" in (run_dir / "logs" / "trainer.log").read_text()
    assert "trainer finished" in out
    assert_nothing_left(run_dir, proc)
