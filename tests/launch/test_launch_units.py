# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Launcher pieces that need no running stack: config validation, derived settings, env YAML, envs list, supervisor,
doctor's failure hints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from typer.testing import CliRunner

from atropos_verl.cli import app
from atropos_verl.errors import ConfigError
from atropos_verl.launch import watchdog
from atropos_verl.launch.config import load_run_config
from atropos_verl.launch.doctor import run_doctor
from atropos_verl.launch.env_configs import write_env_yaml
from atropos_verl.launch.envs_list import list_envs
from atropos_verl.launch.plan import make_plan
from atropos_verl.launch.processes import free_port, session_members, started_since_boot
from atropos_verl.launch.run import forget_previous_counts
from atropos_verl.launch.run_temp import link_compile_cache, remove_run_files
from atropos_verl.launch.supervisor import Child, RunFailed, Supervisor
from atropos_verl.trainer.endpoints import Endpoints, publish_endpoints

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_CHECKOUT = ROOT / "tests" / "fixtures" / "atropos_checkout"


def write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


BASE = {"run_name": "r", "model_path": "/models/m", "environments": [{"env": "addition"}]}


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"environments\.0\.instances"):
        load_run_config(write(tmp_path, {**BASE, "environments": [{"env": "addition", "instances": 0}]}))
    with pytest.raises(ConfigError, match=r"environments\.0\.settings.*group_size.*rollout\.n"):
        load_run_config(write(tmp_path, {**BASE, "environments": [{"env": "x", "settings": {"group_size": 3}}]}))
    with pytest.raises(ConfigError, match=r"typo_key.*Extra inputs are not permitted"):
        load_run_config(write(tmp_path, {**BASE, "typo_key": 1}))
    with pytest.raises(ConfigError, match="exactly one of model_path and build_model"):
        load_run_config(write(tmp_path, {"run_name": "r", "environments": [{"env": "addition"}]}))
    with pytest.raises(ConfigError, match="no such config file"):
        load_run_config(tmp_path / "missing.yaml")


def test_backend_choice(tmp_path):
    cfg = load_run_config(write(tmp_path, {**BASE, "output_dir": str(tmp_path)}))
    assert make_plan(cfg, [], has_accelerator=False).backend == "vllm"
    # a GPU host with only vLLM installed (as here) gets vLLM; tests/launch/test_gpu_path_plan.py has the whole table
    assert make_plan(cfg, [], has_accelerator=True).backend == "vllm"
    sglang = load_run_config(write(tmp_path, {**BASE, "backend": "sglang", "output_dir": str(tmp_path)}))
    with pytest.raises(ConfigError, match="sglang needs a GPU"):
        make_plan(sglang, [], has_accelerator=False)


def test_async_mode_warns_of_queues_deeper_than_the_staleness_bound(tmp_path):
    envs = [{"env": "addition", "name": "deep", "max_batches_offpolicy": 2}, {"env": "addition", "name": "shallow"}]
    doc = {**BASE, "output_dir": str(tmp_path), "environments": envs}
    hybrid = load_run_config(write(tmp_path, doc))
    assert make_plan(hybrid, [], has_accelerator=False).advice == []  # unbounded: nothing is rejected
    # the mode and bound as the trainer will see them, whether set in the run config or as Hydra overrides
    in_config = load_run_config(write(tmp_path, {**doc, "mode": "async"}))
    for cfg, cli in ((in_config, []), (hybrid, ["atropos.mode=async"])):
        (advice,) = make_plan(cfg, cli, has_accelerator=False).advice
        assert advice.startswith("environment deep: max_batches_offpolicy 2") and "max_staleness 2" in advice
        assert "max_batches_offpolicy <= 1" in advice
    assert make_plan(hybrid, ["atropos.mode=async", "atropos.max_staleness=3"], has_accelerator=False).advice == []
    (strict, *_) = make_plan(hybrid, ["atropos.mode=async", "atropos.max_staleness=1"], has_accelerator=False).advice
    assert "max_staleness >= 2" in strict


def test_standalone_placement_is_settled_before_anything_starts(tmp_path):
    doc = {**BASE, "output_dir": str(tmp_path), "placement": "standalone"}
    with pytest.raises(ConfigError, match="needs atropos.mode=async"):
        make_plan(load_run_config(write(tmp_path, doc)), [], has_accelerator=False)
    plan = make_plan(load_run_config(write(tmp_path, {**doc, "mode": "async", "backend": "vllm"})), [],
                     has_accelerator=False)
    assert "atropos.placement=standalone" in plan.trainer_overrides
    assert plan.verl.actor_rollout_ref.rollout.checkpoint_engine.backend == "gloo"
    with pytest.raises(ConfigError, match="nccl checkpoint engine, which needs cupy"):  # GPUs: nccl, and no cupy here
        make_plan(load_run_config(write(tmp_path, {**doc, "mode": "async", "backend": "vllm"})), [],
                  has_accelerator=True)
    with pytest.raises(ConfigError, match="backend=naive"):
        make_plan(load_run_config(write(tmp_path, {**doc, "mode": "async"})),
                  ["actor_rollout_ref.rollout.checkpoint_engine.backend=naive"], has_accelerator=False)


def test_derived_env_settings_follow_the_trainer_config(tmp_path):
    verl = ["actor_rollout_ref.rollout.n=8", "data.max_response_length=16"]
    doc = {**BASE, "output_dir": str(tmp_path), "verl": verl,
           "environments": [{"env": "addition", "instances": 2, "weight": 0.5, "max_batches_offpolicy": 2,
                             "settings": {"eval_size": 10}}]}
    cfg = load_run_config(write(tmp_path, doc))
    plan = make_plan(cfg, ["actor_rollout_ref.rollout.n=6", "data.max_prompt_length=40"], has_accelerator=False)
    assert plan.group_size == 6  # the command line wins over the YAML, as Hydra overrides do
    assert [e.name for e in plan.envs] == ["addition-0", "addition-1"]
    s = plan.envs[0].env_settings
    assert s["group_size"] == 6 and s["max_token_length"] == 16 and s["tokenizer_name"] == "/models/m"
    assert s["inference_weight"] == 0.5 and s["max_batches_offpolicy"] == 2 and s["eval_size"] == 10
    assert s["rollout_server_url"] == plan.api_url and plan.api_url.startswith("http://127.0.0.1:")
    assert plan.trainer_overrides[-2:] == ["actor_rollout_ref.rollout.n=6", "data.max_prompt_length=40"]
    assert "actor_rollout_ref.rollout.name=vllm" in plan.trainer_overrides
    assert plan.verl.data.max_prompt_length == 40


def test_a_previous_runs_door_counts_and_env_status_records_are_forgotten(tmp_path):
    plan = make_plan(load_run_config(write(tmp_path, {**BASE, "output_dir": str(tmp_path)})), [], has_accelerator=False)
    door = Path(str(plan.verl.atropos.door_file))
    (plan.run_dir / "envs").mkdir(parents=True)
    door.write_text('{"streak": 99}')
    stale = plan.run_dir / "envs" / "renamed_since.status.json"
    stale.write_text('{"skipped_too_long": 99, "groups_posted": 0}')
    kept = plan.run_dir / "envs" / "addition.yaml"
    kept.write_text("env: {}")
    assert door.parent == plan.run_dir
    forget_previous_counts(plan)
    assert not door.exists() and not stale.exists() and kept.exists()
    forget_previous_counts(plan)  # nothing left to remove is fine


def test_bad_verl_override_is_a_config_error(tmp_path):
    cfg = load_run_config(write(tmp_path, {**BASE, "output_dir": str(tmp_path)}))
    with pytest.raises(ConfigError, match="verl overrides"):
        make_plan(cfg, ["actor_rollout_ref.no_such_key=1"], has_accelerator=False)


def test_env_file_found_in_checkout(tmp_path):
    doc = {**BASE, "output_dir": str(tmp_path), "atropos_checkout": str(FIXTURE_CHECKOUT),
           "environments": [{"env": "environments/gsm8k_like_server.py"}]}
    plan = make_plan(load_run_config(write(tmp_path, doc)), [], has_accelerator=False)
    assert plan.envs[0].target == str(FIXTURE_CHECKOUT / "environments" / "gsm8k_like_server.py")
    assert plan.envs[0].name == "gsm8k_like_server"
    doc["environments"] = [{"env": "environments/nope.py"}]
    with pytest.raises(ConfigError, match="nope.py"):
        make_plan(load_run_config(write(tmp_path, doc)), [], has_accelerator=False)


def test_env_yaml_one_entry_per_replica(tmp_path):
    eps = Endpoints(addresses=["10.0.0.1:1111", "10.0.0.1:2222"], backend="vllm", served_model_name="/m",
                    tokenizer_path="/m")
    path = write_env_yaml(tmp_path / "e.yaml", {"group_size": 4}, eps, {"timeout": 30})
    doc = yaml.safe_load(path.read_text())
    assert [o["base_url"] for o in doc["openai"]] == ["http://10.0.0.1:1111/v1", "http://10.0.0.1:2222/v1"]
    assert {o["server_type"] for o in doc["openai"]} == {"vllm"} and doc["openai"][0]["timeout"] == 30
    assert doc["openai"][0]["model_name"] == "/m" and doc["env"]["tokenizer_name"] == "/m"
    one = Endpoints(addresses=["h:1"], backend="sglang", served_model_name="s", tokenizer_path="/t")
    doc = yaml.safe_load(write_env_yaml(tmp_path / "f.yaml", {}, one).read_text())
    assert doc["openai"]["server_type"] == "sglang"


def test_envs_list_finds_builtin_and_checkout_envs():
    entries = {(e.name, e.source): e for e in list_envs(FIXTURE_CHECKOUT)}
    assert entries[("addition", "builtin")].path == "token-level (ManagedServer)"
    assert entries[("MathEnv", "checkout")].path == "token-level (ManagedServer)"
    assert ("MathEnvWithTools", "checkout") in entries  # subclass of a subclass, same file
    assert entries[("ChatEnv", "checkout")].path == "chat only"
    assert ("NotAnEnv", "checkout") not in entries
    result = CliRunner().invoke(app, ["envs", "list", "--checkout", str(FIXTURE_CHECKOUT)])
    assert result.exit_code == 0 and "MathEnv" in result.output and "addition" in result.output


def _sleeper(seconds: float, code: int = 0) -> list[str]:
    return [sys.executable, "-c", f"import time, sys; time.sleep({seconds}); sys.exit({code})"]


def test_supervisor_restarts_with_backoff_then_fails(tmp_path):
    sup = Supervisor(restart_backoff=0.2, stop_grace=2)
    env = sup.start(Child("env", "env", _sleeper(0.1, 3), tmp_path / "env.log", max_restarts=2))
    deadline = time.monotonic() + 20
    with pytest.raises(RunFailed, match=r"env exited with code 3 after 2 restart\(s\)"):
        while time.monotonic() < deadline:
            sup.check()
            time.sleep(0.05)
    assert env.restarts == 2 and len(env.sessions) == 3
    assert (tmp_path / "env.log").read_text().count("=== start env") == 3
    assert sup.stop_all() == []


def test_supervisor_stops_whole_sessions_at_once(tmp_path):
    grace = 2.0
    sup = Supervisor(stop_grace=grace)
    # a child that starts a grandchild in a new process group, as Ray's daemons do
    code = ("import subprocess, sys, time, os; "
            "subprocess.Popen([sys.executable, '-c', 'import os, time; os.setpgrp(); time.sleep(60)']); "
            "time.sleep(60)")
    deaf = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    a = sup.start(Child("a", "api", [sys.executable, "-c", code], tmp_path / "a.log"))
    b = sup.start(Child("b", "trainer", [sys.executable, "-c", deaf], tmp_path / "b.log"))
    c = sup.start(Child("c", "env", [sys.executable, "-c", deaf], tmp_path / "c.log"))
    deadline = time.monotonic() + 10
    while len(session_members(a.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(session_members(a.pid)) == 2
    time.sleep(0.5)  # b and c have set their handlers
    began = time.monotonic()
    assert sup.stop_all() == []
    elapsed = time.monotonic() - began
    assert all(session_members(x.pid) == [] for x in (a, b, c))
    assert a.state == b.state == c.state == "stopped" and b.exit_code == c.exit_code == -9
    # two children ignore SIGTERM: they share one grace period before SIGKILL, not one each
    assert grace <= elapsed < 2 * grace, elapsed


def test_launcher_identity_is_its_start_since_boot(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        started = started_since_boot(child.pid)
        assert 0 < started <= time.clock_gettime(time.CLOCK_BOOTTIME)
        assert started_since_boot(child.pid) == started and started >= started_since_boot(os.getpid())
        assert watchdog._launcher_alive(child.pid, started)
        assert not watchdog._launcher_alive(child.pid, started - 1)  # another process that got the same pid
    finally:
        child.kill()
        child.wait()
    assert not watchdog._launcher_alive(child.pid, started)
    with pytest.raises(psutil.NoSuchProcess):
        started_since_boot(child.pid)


def test_env_that_exits_cleanly_is_finished_not_restarted(tmp_path):
    sup = Supervisor(restart_backoff=0.1)
    env = sup.start(Child("env", "env", _sleeper(0.1, 0), tmp_path / "env.log", max_restarts=3))
    deadline = time.monotonic() + 10
    while env.state == "running" and time.monotonic() < deadline:
        sup.check()
        time.sleep(0.05)
    time.sleep(0.3)
    sup.check()
    assert env.state == "finished" and env.restarts == 0 and len(env.sessions) == 1


def test_trainer_exit_ends_the_run(tmp_path):
    sup = Supervisor()
    sup.start(Child("trainer", "trainer", _sleeper(0.1, 0), tmp_path / "t.log"))
    deadline = time.monotonic() + 10
    while (done := sup.check()) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert done is not None and done.exit_code == 0


def test_doctor_before_a_run_and_with_the_api_down(tmp_path):
    port = free_port()
    doc = {**BASE, "output_dir": str(tmp_path), "api": {"port": port}}
    cfg = load_run_config(write(tmp_path, doc))
    checks = {c.name: c for c in run_doctor(cfg)}
    assert checks["package verl"].ok and checks["package atroposlib"].ok and checks[f"port 127.0.0.1:{port}"].ok
    # A run's files are there but its API is not: a failing check with a hint pointing at the API log.
    run_dir = cfg.run_dir.resolve()
    run_dir.mkdir(parents=True)
    (run_dir / "launch.json").write_text(json.dumps({"api_url": f"http://127.0.0.1:{port}"}))
    publish_endpoints(run_dir / "endpoints.json", Endpoints(["127.0.0.1:1"], "vllm", "m", "m"))
    bad = [c for c in run_doctor(cfg) if not c.ok]
    assert [c.name for c in bad] == ["api /status"] and "logs/api.log" in bad[0].hint
    result = CliRunner().invoke(app, ["doctor", str(tmp_path / "run.yaml")])
    assert result.exit_code == 1 and "FAIL" in result.output


def test_settings_name_the_run_dir_and_hooks_are_checked_before_the_run(tmp_path):
    doc = {**BASE, "output_dir": str(tmp_path),
           "environments": [{"env": "addition", "settings": {"eval_metrics_path": "{run_dir}/e-{env}.jsonl"}}]}
    plan = make_plan(load_run_config(write(tmp_path, doc)), [], has_accelerator=False)
    assert plan.envs[0].env_settings["eval_metrics_path"] == f"{plan.run_dir}/e-addition.jsonl"
    typo = {**doc, "hooks": {"after_run": {"call": "atropos_verl.demo.hooks:after_rnu"}}}
    with pytest.raises(ConfigError, match=r"hooks\.after_run\.call=.*after_rnu"):
        make_plan(load_run_config(write(tmp_path, typo)), [], has_accelerator=False)
    with pytest.raises(ConfigError, match="hooks.prepare_model .* needs build_model"):
        load_run_config(write(tmp_path, {**doc, "hooks": {"prepare_model": {"call": "m:f"}}}))
    with pytest.raises(ConfigError, match=r"hooks\.after_run\.call"):
        load_run_config(write(tmp_path, {**doc, "hooks": {"after_run": {"call": "no colon"}}}))


def test_final_hf_checkpoint_is_the_last_with_weights(tmp_path):
    from atropos_verl.demo.hooks import final_hf_checkpoint

    assert final_hf_checkpoint(tmp_path) is None
    for step, weights in ((5, True), (20, True), (30, False)):
        hf = tmp_path / "checkpoints" / f"global_step_{step}" / "actor" / "huggingface"
        hf.mkdir(parents=True)
        if weights:
            (hf / "model.safetensors").write_bytes(b"x")
    assert final_hf_checkpoint(tmp_path) == tmp_path / "checkpoints" / "global_step_20" / "actor" / "huggingface"


def test_prepare_model_hook_runs_once_and_is_cached_with_the_model(tmp_path):
    from atropos_verl.launch.model_prep import prepare_model
    from tests.launch import hook_fixtures

    hook_fixtures.CALLS.clear()
    doc = {"run_name": "r", "output_dir": str(tmp_path), "environments": [{"env": "addition"}],
           "build_model": {"kind": "tiny", "size": {"hidden_size": 32, "intermediate_size": 64,
                                                    "num_hidden_layers": 1, "num_attention_heads": 2,
                                                    "num_key_value_heads": 2}},
           "hooks": {"prepare_model": {"call": "tests.launch.hook_fixtures:copy_model", "settings": {"tag": "a"}}}}
    model = Path(prepare_model(load_run_config(write(tmp_path, doc))))
    assert (model / "TAG").read_text() == "a" and (model / "config.json").is_file()
    stamp = json.loads((model / "atropos_verl_build.json").read_text())
    assert stamp["prepare_model"] == {"call": "tests.launch.hook_fixtures:copy_model", "tag": "a"}
    assert prepare_model(load_run_config(write(tmp_path, doc))) == str(model)
    assert len(hook_fixtures.CALLS) == 1  # cached
    doc["hooks"]["prepare_model"]["settings"]["tag"] = "b"  # other settings: another model
    assert (Path(prepare_model(load_run_config(write(tmp_path, doc)))) / "TAG").read_text() == "b"
    assert len(hook_fixtures.CALLS) == 2
    assert not (tmp_path / "r" / "model.base").exists()


def test_live_view_names_the_served_policy_version_and_lag():
    from atropos_verl.launch.health import Snapshot
    from atropos_verl.launch.live_view import policy_phrase

    snap = Snapshot()
    assert policy_phrase(snap) == ""  # servers that do not stamp, before the first step: no claim
    snap.server_versions = {"127.0.0.1:1": 7, "127.0.0.1:2": 6}
    snap.lag = {"mean": 0.875, "max": 2.0}
    assert policy_phrase(snap) == " | policy v6/7 lag 0.9/2"


def test_torch_compile_cache_outlives_the_runs_temp_dir(tmp_path):
    """The launcher gives every child a private TMPDIR that the stop removes. torch's kernel cache and its precompiled
    header, both found from TMPDIR, must resolve to torch's default under the TMPDIR the run started with, and
    survive the temp dir's removal."""
    user_tmp, run_temp = tmp_path / "user", tmp_path / "run"
    user_tmp.mkdir(), run_temp.mkdir()
    target = link_compile_cache(run_temp, {"TMPDIR": str(user_tmp)})
    code = (
        "import os; from torch._inductor import codecache; from torch._inductor.runtime.cache_dir_utils import "
        "cache_dir; print(os.path.realpath(cache_dir())); print(os.path.realpath(codecache._HEADER_DIR))"
    )
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"} | {"TMPDIR": str(run_temp)}
    torch_dirs = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert target is not None and target.parent == user_tmp and target.name.startswith("torchinductor_")
    assert torch_dirs == [str(target), str(target / "precompiled_headers")]
    (target / "kernel.so").write_bytes(b"compiled")
    remove_run_files(run_temp, None, [])
    assert not run_temp.exists() and (target / "kernel.so").read_bytes() == b"compiled"
