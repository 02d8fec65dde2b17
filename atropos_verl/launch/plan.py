# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Turn a RunConfig (+ command-line overrides) into what gets started: trainer argv and per-environment settings.

The trainer's verl config is composed here exactly as the trainer will compose it, so the environments' group size,
token budget and tokenizer are derived from it and cannot disagree with it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from atropos_verl.errors import ConfigError
from atropos_verl.launch import hooks
from atropos_verl.launch.config import EnvironmentSpec, RunConfig
from atropos_verl.launch.processes import free_port, port_is_free
from atropos_verl.trainer.placement import STANDALONE, placement_of, placement_problems
from atropos_verl.trainer.serving import apply_mode_defaults, apply_serving_defaults

# The trainer's entry point; a verl recipe wrapping it (recipe/atropos/main_atropos.py) takes the same overrides.
TRAINER_MODULE = "atropos_verl.trainer.main"


@dataclass
class EnvPlan:
    """One environment process: what to run and the `env:` settings its generated YAML gets."""

    name: str
    spec: EnvironmentSpec
    target: str
    env_settings: dict[str, Any]
    cwd: Path | None = None  # where its processes start (`env_cwd`)


@dataclass
class RunPlan:
    config: RunConfig
    run_dir: Path
    backend: str
    api_host: str
    api_port: int
    trainer_overrides: list[str]
    verl: DictConfig
    group_size: int
    max_prompt_length: int
    max_response_length: int
    envs: list[EnvPlan]
    server_key: str | None = None  # set by the launcher when `needs_server_key` (`atropos_verl.server_key`)
    trainer_module: str = TRAINER_MODULE
    advice: list[str] = field(default_factory=list)  # settings that run but waste work; the launcher warns

    @property
    def needs_server_key(self) -> bool:
        """Whether the inference servers get a per-run key: always for `per_run`; for `auto`, when they listen on
        a routable address, i.e. the run joins a Ray cluster or spans nodes (single-node runs bind loopback)."""
        from atropos_verl.trainer.loopback import single_node

        mode = self.config.server_api_key
        return mode == "per_run" or (mode == "auto" and not single_node(self.verl))

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    @property
    def endpoints_file(self) -> Path:
        return self.run_dir / "endpoints.json"

    @property
    def trainer_argv(self) -> list[str]:
        return [sys.executable, "-m", self.trainer_module, *self.trainer_overrides]


def engine_installed(name: str) -> bool:
    """Whether the rollout engine's Python package is importable here (vLLM's CPU build installs as `vllm` too)."""
    return importlib.util.find_spec(name) is not None


def resolve_backend(
    requested: str, has_accelerator: bool, *, mode: str = "hybrid", installed: Callable[[str], bool] = engine_installed
) -> str:
    """The rollout engine a run uses. `auto`: verl's vLLM replica on the CPU platform; on GPUs SGLang when it is
    installed and the run is hybrid, else vLLM. Asynchronous mode needs vLLM (the servers keep generating through the
    update, which only verl's vLLM replica supports here). Refused now, not when the trainer starts."""
    if requested == "auto":
        if not has_accelerator:
            requested = "vllm"
        elif mode != "async" and installed("sglang"):
            requested = "sglang"
        elif installed("vllm"):
            requested = "vllm"
        else:
            raise ConfigError(
                "backend: auto found no rollout engine: install one, `pip install 'atropos-verl[vllm]'` or "
                "`'atropos-verl[sglang]'` (asynchronous mode needs [vllm]); see docs/gpu.md"
            )
    if requested == "sglang" and not has_accelerator:
        raise ConfigError(
            "backend: sglang needs a GPU, and this host has no accelerator. Use `backend: vllm` (or `auto`): on a "
            "CPU host verl's vLLM replica runs on the CPU platform."
        )
    if requested == "sglang" and mode == "async":
        raise ConfigError(
            "mode: async needs backend: vllm (or auto with the [vllm] extra installed): the servers keep generating "
            "while the actor updates, which this package supports on verl's vLLM replica only"
        )
    if not installed(requested):
        extra = "cpu] (bash scripts/setup_cpu.sh)" if not has_accelerator else f"{requested}]"
        raise ConfigError(f"backend: {requested}, but {requested} is not installed: install 'atropos-verl[{extra}'")
    return requested


def serving_refusals(verl_cfg: DictConfig, *, has_accelerator: bool) -> list[str]:
    """What the trainer's config check would refuse about the servers, asked before anything starts."""
    from atropos_verl.trainer.config_check import mode_problems
    from atropos_verl.trainer.serving import serving_problems

    problems = mode_problems(verl_cfg) + serving_problems(verl_cfg)
    engine = OmegaConf.select(verl_cfg, "actor_rollout_ref.rollout.checkpoint_engine.backend")
    if has_accelerator and placement_of(verl_cfg) == STANDALONE and engine == "nccl" and not engine_installed("cupy"):
        problems.append(
            "placement: standalone pushes weights through verl's nccl checkpoint engine, which needs cupy: "
            "`pip install 'atropos-verl[vllm]'` installs it (cupy-cuda13x), or set "
            "actor_rollout_ref.rollout.checkpoint_engine.backend to another engine"
        )
    loggers = OmegaConf.select(verl_cfg, "trainer.logger", default=[]) or []
    if "wandb" in ([loggers] if isinstance(loggers, str) else list(loggers)) and not wandb_ready():
        problems.append(
            "trainer.logger includes wandb, but this host has no wandb credentials (WANDB_API_KEY, `wandb login`) "
            "and wandb would stop the trainer to ask for them; log in, set WANDB_MODE=offline, or drop wandb from "
            "trainer.logger"
        )
    return problems


def wandb_ready() -> bool:
    """Whether wandb can log without asking: a key, a login (netrc), or a mode that needs none."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE", "").lower() in ("offline", "disabled"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text(encoding="utf-8")
    except OSError:
        return False


def compose_trainer_config(overrides: list[str]) -> DictConfig:
    """The trainer's config, composed from the same YAML and overrides `atropos_verl.trainer.main` receives.

    verl's YAML is found on disk: the config's `pkg://verl.trainer.config` search path would import verl (torch,
    tensordict: seconds on the start-up's critical path) only to locate files."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="atropos_verl.trainer.config", version_base=None):
        return compose(config_name="atropos_trainer", overrides=[*overrides, _verl_search_path()])


def _verl_search_path() -> str:
    """`hydra.searchpath` naming verl's config directory as a file path, found without importing verl."""
    spec = importlib.util.find_spec("verl")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("verl is not installed: the trainer's config is verl's ppo_trainer config")
    config_dir = Path(next(iter(spec.submodule_search_locations))) / "trainer" / "config"
    return f"hydra.searchpath=[file://{config_dir}]"


def _resolve_env_target(spec: EnvironmentSpec, checkout: Path | None, base_dir: Path) -> str:
    """Builtin names and module paths pass through; `.py` files are found relative to the checkout or the config."""
    if not spec.env.endswith(".py"):
        return spec.env
    for root in [r for r in (checkout, base_dir, Path.cwd()) if r is not None]:
        candidate = (root / spec.env).resolve()
        if candidate.is_file():
            return str(candidate)
    raise ConfigError(f"environments: file '{spec.env}' not found under atropos_checkout={checkout} or {base_dir}")


def env_cwd(spec: EnvironmentSpec, target: str, checkout: Path | None) -> Path | None:
    """The environment's own `cwd`; else the checkout's root when the file lies in the checkout (Atropos environments
    open data files as `environments/<dir>/<file>`, from the repository root); else None (the launcher's)."""
    if spec.cwd is not None:
        return spec.cwd
    if checkout is not None and target.endswith(".py") and checkout.resolve() in Path(target).resolve().parents:
        return checkout.resolve()
    return None


def _fill(value: Any, **fields: Any) -> Any:
    """`{run_dir}` and `{env}` in string settings become this run's dir and the env process name."""
    if isinstance(value, str):
        for key, sub in fields.items():
            value = value.replace("{" + key + "}", str(sub))
    return value


def make_plan(
    config: RunConfig,
    cli_overrides: list[str],
    *,
    has_accelerator: bool,
    config_dir: Path = Path("."),
    model_path: str | None = None,
    trainer_module: str = TRAINER_MODULE,
) -> RunPlan:
    """`model_path` is where a built model landed (config.build_model); otherwise config.model_path."""
    model_path = model_path or config.model_path
    if model_path is None:
        raise ConfigError("build_model: the model has not been built; call prepare_model first")
    backend = resolve_backend(config.backend, has_accelerator, mode=config.mode)
    for key in ("prepare_model", "after_run"):  # a typo fails now, not after the run
        if (hook := getattr(config.hooks, key)) is not None:
            hooks.load(hook, key)
    run_dir = config.run_dir.resolve()
    port = config.api.port or free_port(config.api.host)
    if config.api.port and not port_is_free(port, config.api.host):
        raise ConfigError(f"api.port: {config.api.host}:{port} is already in use")
    api_url = f"http://{config.api.host}:{port}"

    ours = [
        f"actor_rollout_ref.model.path={model_path}",
        f"actor_rollout_ref.rollout.name={backend}",
        f"atropos.api_url={api_url}",
        f"atropos.run_dir={run_dir}",
        f"trainer.default_local_dir={run_dir / 'checkpoints'}",
        f"trainer.experiment_name={config.run_name}",
        f"atropos.mode={config.mode}",
        f"atropos.placement={config.placement}",
    ]
    if config.max_staleness is not None:
        ours.append(f"atropos.max_staleness={config.max_staleness}")
    if backend == "sglang":
        # Atropos' sglang server type health-checks and chats through the OpenAI routes, which need a tokenizer.
        ours.append("actor_rollout_ref.rollout.skip_tokenizer_init=False")
    if config.ray_address:
        ours.append(f"++ray_kwargs.ray_init.address={config.ray_address}")
    overrides = [*ours, *config.verl, *cli_overrides]
    try:
        verl_cfg = compose_trainer_config(overrides)
    except Exception as exc:  # Hydra's own message names the bad override
        raise ConfigError(f"verl overrides: {exc}") from None
    # Where the servers run is settled now, not after the model build and Ray: the trainer's defaults, then its check.
    apply_mode_defaults(verl_cfg, overrides, cpu_platform=not has_accelerator)
    apply_serving_defaults(verl_cfg, overrides)
    if problems := placement_problems(verl_cfg) + serving_refusals(verl_cfg, has_accelerator=has_accelerator):
        raise ConfigError("; ".join(problems))

    group_size = int(verl_cfg.actor_rollout_ref.rollout.n)
    max_prompt = int(verl_cfg.data.max_prompt_length)
    max_response = int(verl_cfg.data.max_response_length)
    envs = []
    for spec in config.environments:
        target = _resolve_env_target(spec, config.atropos_checkout, config_dir)
        for k in range(spec.instances):
            name = spec.label if spec.instances == 1 else f"{spec.label}-{k}"
            settings: dict[str, Any] = {
                "use_wandb": False,
                "total_steps": -1,  # follow the trainer's num_steps from the registration
                **{k: _fill(v, run_dir=run_dir, env=name) for k, v in spec.settings.items()},
                "group_size": group_size,
                # Environments pass this as max_tokens: it must keep a completion within the trainer's response cap.
                "max_token_length": max_response,
                "tokenizer_name": model_path,
                "rollout_server_url": api_url,
                "max_batches_offpolicy": spec.max_batches_offpolicy,
                "inference_weight": spec.weight,
                "wandb_name": name,
            }
            if spec.min_batch_allocation is not None:
                settings["min_batch_allocation"] = spec.min_batch_allocation
            envs.append(EnvPlan(name=name, spec=spec, target=target, env_settings=settings,
                                cwd=env_cwd(spec, target, config.atropos_checkout)))
    names = [e.name for e in envs]
    if len(set(names)) != len(names):
        raise ConfigError(f"environments: process names must be unique, got {names}; set `name:`")
    return RunPlan(
        config=config,
        run_dir=run_dir,
        backend=backend,
        api_host=config.api.host,
        api_port=port,
        trainer_overrides=overrides,
        verl=verl_cfg,
        group_size=group_size,
        max_prompt_length=max_prompt,
        max_response_length=max_response,
        envs=envs,
        trainer_module=trainer_module,
        advice=staleness_advice(verl_cfg, envs),
    )


def staleness_advice(verl_cfg: DictConfig, envs: list[EnvPlan]) -> list[str]:
    """In asynchronous mode a group can wait behind max_batches_offpolicy - 1 queued batches and its generation can
    span an update, so it may arrive max_batches_offpolicy + 1 updates old. Over the trainer's staleness bound it is
    generated only to be rejected: say so before the run rather than as a rejection count after it."""
    from atropos_verl.trainer.staleness import effective_max_staleness

    atropos = verl_cfg.get("atropos", {})
    bound = effective_max_staleness(atropos)
    if atropos.get("mode", "hybrid") != "async" or bound is None:
        return []
    fix = f"max_batches_offpolicy <= {bound - 1}" if bound >= 2 else "max_staleness >= 2 with max_batches_offpolicy 1"
    return [
        f"environment {e.name}: max_batches_offpolicy {e.spec.max_batches_offpolicy} lets groups arrive up to "
        f"{e.spec.max_batches_offpolicy + 1} updates old, over max_staleness {bound}; those are generated and then "
        f"rejected as stale_policy_version ({fix} avoids most of it)"
        for e in envs if e.spec.max_batches_offpolicy + 1 > bound
    ]
