# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The GPU path's choices, made and refused before anything starts: the engine `backend: auto` picks, LoRA served
merged, SGLang's sampling defaults, asynchronous mode's engine, standalone placement's cupy, wandb credentials, and
the GPU configs as shipped."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from atropos_verl.errors import ConfigError
from atropos_verl.launch.config import load_run_config
from atropos_verl.launch.plan import compose_trainer_config, engine_installed, make_plan, resolve_backend
from atropos_verl.trainer.serving import LORA_MERGE_KEY, SGLANG_SAMPLING_KEY, apply_serving_defaults, serving_problems

ROOT = Path(__file__).resolve().parents[2]
BASE = {"run_name": "r", "model_path": "/models/m", "environments": [{"env": "addition"}]}
LORA = ["actor_rollout_ref.model.lora_rank=8", "actor_rollout_ref.model.target_modules=all-linear"]


def write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({**doc, "output_dir": str(tmp_path / "runs")}))
    return path


def only(*names: str):
    return lambda name: name in names


@pytest.mark.parametrize(
    ("requested", "gpu", "mode", "installed", "expected"),
    [
        ("auto", False, "hybrid", ("vllm",), "vllm"),
        ("auto", True, "hybrid", ("sglang", "vllm"), "sglang"),
        ("auto", True, "hybrid", ("vllm",), "vllm"),  # [vllm] alone on a GPU host: not SGLang
        ("auto", True, "hybrid", ("sglang",), "sglang"),
        ("auto", True, "async", ("sglang", "vllm"), "vllm"),  # asynchronous mode runs on vLLM
        ("vllm", True, "async", ("vllm",), "vllm"),
        ("sglang", True, "hybrid", ("sglang",), "sglang"),
    ],
)
def test_backend_follows_what_is_installed(requested, gpu, mode, installed, expected):
    assert resolve_backend(requested, gpu, mode=mode, installed=only(*installed)) == expected


@pytest.mark.parametrize(
    ("requested", "gpu", "mode", "installed", "message"),
    [
        ("auto", True, "hybrid", (), "found no rollout engine"),
        ("auto", True, "async", ("sglang",), "found no rollout engine.*asynchronous mode needs \\[vllm\\]"),
        ("sglang", True, "async", ("sglang", "vllm"), "mode: async needs backend: vllm"),
        ("sglang", True, "hybrid", ("vllm",), "sglang is not installed.*atropos-verl\\[sglang\\]"),
        ("sglang", False, "hybrid", ("sglang",), "sglang needs a GPU"),
        ("vllm", False, "hybrid", (), "setup_cpu.sh"),
    ],
)
def test_backend_refusals_name_the_fix(requested, gpu, mode, installed, message):
    with pytest.raises(ConfigError, match=message):
        resolve_backend(requested, gpu, mode=mode, installed=only(*installed))


def test_this_host_sees_its_own_engines():
    assert engine_installed("vllm") and not engine_installed("an_engine_that_does_not_exist")


def test_lora_is_served_merged_unless_turned_off_and_then_refused(tmp_path):
    plan = make_plan(load_run_config(write(tmp_path, {**BASE, "verl": LORA})), [], has_accelerator=False)
    assert plan.verl.actor_rollout_ref.model.lora.merge is True
    plan = make_plan(load_run_config(write(tmp_path, {**BASE, "verl": [*LORA[:1], "actor_rollout_ref.model.lora.rank=8",
                                                                    f"{LORA_MERGE_KEY}=true"]})), [],
                     has_accelerator=False)
    assert plan.verl.actor_rollout_ref.model.lora.merge is True
    with pytest.raises(ConfigError, match="base model for the whole run"):
        make_plan(load_run_config(write(tmp_path, {**BASE, "verl": LORA})), [f"{LORA_MERGE_KEY}=false"],
                  has_accelerator=False)
    without = make_plan(load_run_config(write(tmp_path, BASE)), [], has_accelerator=False)
    assert without.verl.actor_rollout_ref.model.lora.merge is False  # verl's default stays where there is no LoRA


def test_sglang_servers_sample_with_openai_defaults_unless_refused():
    config = compose_trainer_config(["actor_rollout_ref.rollout.name=sglang"])
    apply_serving_defaults(config, [])
    assert serving_problems(config) == []
    assert config.actor_rollout_ref.rollout.engine_kwargs.sglang.sampling_defaults == "openai"
    user = [f"++{SGLANG_SAMPLING_KEY}=model"]
    config = compose_trainer_config(["actor_rollout_ref.rollout.name=sglang", *user])
    apply_serving_defaults(config, user)
    assert any("generation_config" in p for p in serving_problems(config))
    vllm = compose_trainer_config([])
    apply_serving_defaults(vllm, [])
    assert "sglang" not in (vllm.actor_rollout_ref.rollout.engine_kwargs or {}) or \
        "sampling_defaults" not in vllm.actor_rollout_ref.rollout.engine_kwargs.sglang


def test_wandb_without_credentials_is_refused_up_front(tmp_path, monkeypatch):
    for var in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    doc = {**BASE, "verl": ["trainer.logger=[console,wandb]"]}
    with pytest.raises(ConfigError, match="wandb credentials"):
        make_plan(load_run_config(write(tmp_path, doc)), [], has_accelerator=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    make_plan(load_run_config(write(tmp_path, doc)), [], has_accelerator=False)


def test_standalone_nccl_without_cupy_is_refused_up_front(tmp_path):
    doc = {**BASE, "mode": "async", "placement": "standalone", "backend": "vllm"}
    if engine_installed("cupy"):
        pytest.fail("cupy is installed in the CPU world; this test expects the CPU world's packages")
    with pytest.raises(ConfigError, match="needs cupy"):
        make_plan(load_run_config(write(tmp_path, doc)), ["actor_rollout_ref.rollout.n_gpus_per_node=1"],
                  has_accelerator=True)
    make_plan(load_run_config(write(tmp_path, doc)), ["actor_rollout_ref.rollout.n_gpus_per_node=1"],
              has_accelerator=False)  # the CPU platform pushes through gloo


@pytest.mark.parametrize("name", ["gsm8k.yaml", "gsm8k_vllm.yaml", "gsm8k_multinode.yaml"])
def test_gpu_configs_find_the_checkout_beside_them_and_plan(tmp_path, name):
    """The shipped GPU configs, copied with a checkout at the place they name, plan on a GPU host with vLLM only (this
    one): the checkout resolves against the YAML, LoRA is merged, and nothing needs wandb credentials."""
    configs = tmp_path / "configs"
    configs.mkdir()
    shutil.copy(ROOT / "configs" / name, configs / name)
    env_file = tmp_path / "atropos" / "environments" / "gsm8k_server.py"
    env_file.parent.mkdir(parents=True)
    env_file.write_text("# stands in for the checkout's file; planning only resolves the path\n")
    config = load_run_config(configs / name)
    assert config.atropos_checkout == (tmp_path / "atropos").resolve()
    if config.backend == "sglang":
        with pytest.raises(ConfigError, match="sglang is not installed"):
            make_plan(config, [], has_accelerator=True, config_dir=configs)
        config = config.model_copy(update={"backend": "auto"})
    plan = make_plan(config, [], has_accelerator=True, config_dir=configs)
    assert plan.envs[0].target == str(env_file.resolve())
    assert plan.verl.actor_rollout_ref.model.lora.merge is True
    assert "wandb" not in list(plan.verl.trainer.logger)


def test_environments_from_a_checkout_start_in_its_root(tmp_path):
    """Atropos environments open their data as `environments/<dir>/<file>`, relative to the repository root."""
    checkout = tmp_path / "atropos"
    env_file = checkout / "environments" / "qa" / "qa_env.py"
    env_file.parent.mkdir(parents=True)
    env_file.write_text("# planning only resolves the path\n")
    doc = {**BASE, "atropos_checkout": "atropos",
           "environments": [{"env": "environments/qa/qa_env.py"}, {"env": "addition"},
                            {"env": "environments/qa/qa_env.py", "name": "elsewhere", "cwd": "work"}]}
    plan = make_plan(load_run_config(write(tmp_path, doc)), [], has_accelerator=False, config_dir=tmp_path)
    assert [e.cwd for e in plan.envs] == [checkout.resolve(), None, (tmp_path / "work").resolve()]
