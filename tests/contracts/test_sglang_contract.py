# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""What the GPU path assumes of the pinned SGLang release and of verl 0.9.1's SGLang server, read from their source.

Each test names the behaviour of ours that rests on the fact it checks; when a new pin changes the fact, the test
fails here instead of on a GPU host.
"""

from __future__ import annotations

import ast

import pytest

from atropos_verl.patches import PATCHES, target_alternatives

from .upstream import (
    ROOT,
    exported_names,
    fetch,
    find_class,
    find_function,
    first_line,
    module_file,
    parse,
    resolves,
    self_attributes,
    sglang_pin,
    source_of,
    verl_root,
)

SGLANG_SERVER = "verl/workers/rollout/sglang_rollout/async_sglang_server.py"
SGLANG_ROLLOUT = "verl/workers/rollout/sglang_rollout"
#: verl 0.9.1 imports that the pinned SGLang lacks, each used only behind a feature the product does not turn on.
KNOWN_MISSING = {
    # rollout routing replay (`enable_rollout_routing_replay`), off by default
    ("sglang.srt.layers.moe.routed_experts_capturer", "extract_routed_experts_from_meta_info"),
    # verl's branch for SGLang < 0.5.10; the pin takes `Engine._launch_subprocesses` (checked below)
    ("sglang.srt.entrypoints.http_server", "_launch_subprocesses"),
    # verl's `except ImportError` fallback for SGLang >= 0.5.16; the pin has it in model_runner (checked below)
    ("sglang.srt.model_executor.model_runner_components.weight_updater", "LocalSerializedTensor"),
}


@pytest.fixture(scope="module")
def sglang():
    return fetch("sglang", sglang_pin(), ("sglang/",))


@pytest.fixture(scope="module")
def tokenizer_manager(sglang):
    return find_class(parse(sglang / "sglang/srt/managers/tokenizer_manager.py"), "TokenizerManager")


def test_a_request_registers_then_parks_then_takes_the_reader_lock(tokenizer_manager):
    """`engines.drain_sglang` counts running requests by the reader lock because parked ones are registered."""
    generate = find_function(tokenizer_manager, "generate_request")
    registered = first_line(generate, "self._init_req_state(")
    parked = first_line(generate, "self.is_pause_cond.wait_for(")
    reading = first_line(generate, "self.model_update_lock.reader_lock")
    sent = first_line(generate, "self._send_one_request(")
    assert registered < parked < reading < sent


def test_pause_state_and_lock_are_instance_attributes_the_drain_reaches(tokenizer_manager):
    assert {"is_pause", "is_pause_cond", "model_update_lock", "rid_to_state"} <= self_attributes(tokenizer_manager)
    resume = source_of(find_function(tokenizer_manager, "continue_generation"))
    assert "self.is_pause = False" in resume and "notify_all()" in resume  # verl's resume_generation reopens


def test_the_reader_lock_counts_readers_and_says_whether_it_is_held(sglang):
    lock = find_class(parse(sglang / "sglang/srt/utils/aio_rwlock.py"), "RWLock")
    assert "_readers" in self_attributes(lock)
    is_locked = find_function(lock, "is_locked")
    assert isinstance(is_locked, ast.AsyncFunctionDef) and "self._readers > 0" in source_of(is_locked)
    assert "self._readers += 1" in source_of(find_function(lock, "acquire_reader"))


def test_health_generates_unless_told_not_to_and_reads_the_switch_per_request(sglang):
    """`sglang_replica.HEALTH_GENERATION_ENV` is set in the server actor before it serves (read from our source: the
    module imports verl's SGLang server, which needs SGLang installed)."""
    ours = parse(ROOT / "atropos_verl/trainer/drain/sglang_replica.py")
    (env_var,) = [ast.literal_eval(n.value) for n in ours.body
                  if isinstance(n, ast.AnnAssign | ast.Assign) and "HEALTH_GENERATION_ENV" in source_of(n)]
    health = source_of(find_function(parse(sglang / "sglang/srt/entrypoints/http_server.py"), "health_generate"))
    assert f"envs.{env_var}.get()" in health and "GenerateReqInput(" in health
    env_field = find_class(parse(sglang / "sglang/srt/environ.py"), "EnvField")
    assert "os.getenv(self.name)" in source_of(find_function(env_field, "get"))  # read at call time, not import


def test_sglang_installs_its_key_check_only_in_its_own_launch_which_verl_bypasses(sglang):
    """Hence `ServerKeyGuard` on verl's SGLang app, and the key on verl's control client."""
    http_server = parse(sglang / "sglang/srt/entrypoints/http_server.py")
    callers = {f.name for f in ast.walk(http_server) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
               and "add_api_key_middleware(" in source_of(f)}
    assert callers == {"_setup_and_run_http_server"}
    launch = source_of(find_function(find_class(parse(verl_root() / SGLANG_SERVER), "SGLangHttpServer"),
                                     "launch_server"))
    assert "set_global_state(" in launch and "run_uvicorn(app" in launch
    assert "_setup_and_run_http_server" not in launch and "add_api_key_middleware" not in launch
    assert "http_server.launch_server" not in launch


def test_verls_control_client_opens_every_session_in_one_place():
    """`server_key.authorize_sglang_control_client` adds the key to the sessions `_get_session` opens."""
    adapter = find_class(parse(verl_root() / SGLANG_ROLLOUT / "http_server_engine.py"), "AsyncHttpServerAdapter")
    get_session = find_function(adapter, "_get_session")
    assert any(source_of(d) == "asynccontextmanager" for d in get_session.decorator_list)
    assert "aiohttp.ClientSession(" in source_of(get_session)
    request = source_of(find_function(adapter, "_make_async_request"))
    assert "self._get_session()" in request and "ClientSession(" not in request
    other_sessions = [f.name for f in ast.walk(adapter) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                      and f.name != "_get_session" and "ClientSession(" in source_of(f)]
    assert other_sessions == []


def test_chat_applies_the_models_sampling_defaults_unless_openai(sglang):
    """`serving.apply_serving_defaults` sets `sampling_defaults=openai` on SGLang servers."""
    args = find_class(parse(sglang / "sglang/srt/server_args.py"), "ServerArgs")
    field = next(n for n in args.body if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", "") ==
                 "sampling_defaults")
    assert ast.literal_eval(field.value) == "model" and "'openai'" in source_of(field)
    model_config = find_class(parse(sglang / "sglang/srt/configs/model_config.py"), "ModelConfig")
    assert "self.sampling_defaults != 'model'" in source_of(find_function(model_config, "get_default_sampling_params"))
    chat = source_of(parse(sglang / "sglang/srt/entrypoints/openai/serving_chat.py"))
    assert "get_default_sampling_params()" in chat


def test_verl_serves_merged_lora_weights_and_its_unmerged_sglang_push_cannot_work(sglang):
    """`serving.serving_problems` refuses unmerged LoRA; merged weights reach the servers as a plain update."""
    utils = source_of(parse(verl_root() / SGLANG_ROLLOUT / "utils.py"))
    assert "lora_enabled and (not model_config.lora.get('merge', False))" in utils
    fsdp = source_of(parse(verl_root() / "verl/workers/engine/fsdp/transformer_impl.py"))
    assert "self._merged_lora_per_tensor_param()" in fsdp
    push = source_of(parse(verl_root() / SGLANG_ROLLOUT / "sglang_rollout.py"))
    request = find_class(parse(sglang / "sglang/srt/managers/io_struct.py"), "LoadLoRAAdapterFromTensorsReqInput")
    fields = {n.target.id for n in request.body if isinstance(n, ast.AnnAssign)}
    assert "serialized_named_tensors=" in push and "serialized_named_tensors" not in fields


def test_verl_tells_the_sglang_server_its_step_after_every_push():
    """The SGLang servers' policy stamp is set in `set_global_steps` (`sglang_replica`)."""
    push = parse(verl_root() / SGLANG_ROLLOUT / "sglang_rollout.py")
    assert source_of(push).count("self.server_actor.set_global_steps.remote(global_steps)") >= 2


def test_every_sglang_name_verl_imports_exists_in_the_pin(sglang):
    missing = set()
    for path in sorted((verl_root() / SGLANG_ROLLOUT).glob("*.py")):
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sglang"):
                names = exported_names(sglang, node.module)
                for alias in node.names:
                    if alias.name not in names and module_file(sglang, f"{node.module}.{alias.name}") is None:
                        missing.add((node.module, alias.name))
    assert missing == KNOWN_MISSING


def test_the_pin_takes_verls_current_branches(sglang):
    engine = find_class(parse(sglang / "sglang/srt/entrypoints/engine.py"), "Engine")
    assert find_function(engine, "_launch_subprocesses")
    assert "Engine" in exported_names(sglang, "sglang.srt.entrypoints.http_server")
    assert "LocalSerializedTensor" in exported_names(sglang, "sglang.srt.model_executor.model_runner")
    # verl picks the branch by version: >= 0.5.10 is the Engine one
    assert tuple(int(p) for p in sglang_pin().split(".")[:3]) >= (0, 5, 10)


@pytest.mark.parametrize("patch", [p for p in PATCHES if p.package == "sglang"], ids=lambda p: p.id)
def test_sglang_patch_targets_exist_in_the_pin(sglang, patch):
    """What `doctor --patches` reports "present" on a GPU install, checked here where SGLang cannot be installed."""
    assert any(resolves(sglang, t) for t in target_alternatives(patch)), f"{patch.id} in sglang {sglang_pin()}"


def test_sglangs_own_warmup_requests_carry_the_server_args_key(sglang):
    """Behind `ServerKeyGuard`, SGLang's start-up warmup reaches its own routes with `server_args.api_key`, which
    the trainer sets to the run's key (`trainer.main._server_key_env`)."""
    warmup = source_of(find_function(parse(sglang / "sglang/srt/entrypoints/http_server.py"), "_execute_server_warmup"))
    assert 'headers["Authorization"] = f"Bearer {server_args.api_key}"' in warmup.replace("'", '"')
    assert "headers=headers" in warmup
