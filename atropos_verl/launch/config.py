# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The `atropos-verl run` YAML: what a user writes, validated with errors that name the offending key.

Settings that must agree between the trainer and the environments (group size, token budget, tokenizer, batch size)
are not written by the user twice: they are derived from the trainer's composed verl config (see `derive`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from atropos_verl.errors import ConfigError

# Keys of an environment's `env:` config that the launcher derives; users set their source instead.
DERIVED_ENV_KEYS = {
    "group_size": "actor_rollout_ref.rollout.n",
    "max_token_length": "data.max_response_length",
    "tokenizer_name": "model_path (the served model's tokenizer)",
    "batch_size": "the trainer's registration (environments read it from the API's /info)",
    "rollout_server_url": "api.host / api.port",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApiSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535, description="0 picks a free port")
    max_body_mb: float = Field(64, gt=0, description="largest post an environment may send (413 beyond)")
    max_decompressed_mb: float = Field(256, gt=0, description="largest a gzip post may inflate to (413 beyond)")


class EnvironmentSpec(_Strict):
    env: str = Field(description="builtin name, module path (pkg.mod[:Class]) or .py file (relative to the checkout)")
    name: str | None = Field(None, description="process name in logs and the live view; derived from `env`")
    instances: int = Field(1, ge=1)
    weight: float = Field(1.0, gt=0, description="share of inference slots and of the batch (env inference_weight)")
    min_batch_allocation: float | None = Field(None, ge=0, le=1)
    max_batches_offpolicy: int = Field(1, ge=1, description="how many batches ahead of the trainer the env may run")
    settings: dict[str, Any] = Field(default_factory=dict, description="extra --env.* settings")
    server: dict[str, Any] = Field(default_factory=dict, description="extra keys of each openai server entry")
    token_budget: Literal["response", "total"] = Field(
        "response", description="how the environment reads max_token_length: response = as each request's "
        "max_tokens (most Atropos environments); total = prompt and completion together (it subtracts its "
        "prompt). See atropos_verl/env_side/token_budget.py"
    )
    cwd: Path | None = Field(None, description="working directory of its processes (relative to the config file); "
                             "default: the checkout's root for a file under atropos_checkout, where Atropos "
                             "environments open their data files, else the launcher's own")

    @field_validator("settings")
    @classmethod
    def _no_derived_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if key in DERIVED_ENV_KEYS:
                raise ValueError(f"'{key}' is derived from {DERIVED_ENV_KEYS[key]}; remove it from settings")
        return value

    @property
    def label(self) -> str:
        base = self.name or Path(self.env.split(":")[0]).stem.split(".")[-1]
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", base)


class SupervisionSettings(_Strict):
    health_interval: float = Field(5.0, gt=0, description="seconds between health checks")
    max_restarts: int = Field(3, ge=0, description="restarts of one environment process before the run fails")
    restart_backoff: float = Field(2.0, ge=0, description="first restart delay in seconds, doubled each time")
    startup_timeout: float = Field(900.0, gt=0, description="seconds for the trainer to publish its endpoints")
    stop_grace: float = Field(10.0, gt=0, description="seconds between SIGTERM and SIGKILL at shutdown (all "
                              "children share one)")
    trainer_restarts: int = Field(2, ge=0, le=20, description="resumes of a dead trainer from its latest checkpoint "
                                  "(back-off restart_backoff, doubled each time); 0 disables")


class ModelBuild(_Strict):
    """A model built offline on the first run and cached in the run dir (a tiny Qwen2 for CPU runs and tests)."""

    kind: Literal["tiny"] = "tiny"
    seed: int = 0
    size: dict[str, int] = Field(default_factory=dict, description="build_tiny_model size arguments")


class Hook(_Strict):
    call: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", description="module:function")
    settings: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the call")


class Hooks(_Strict):
    """Extension points of a run (`atropos_verl.launch.hooks`)."""

    prepare_model: Hook | None = Field(None, description="f(built_dir, out_dir, **settings) -> dict: the model "
                                       "build_model made becomes the one served (cached with it)")
    after_run: Hook | None = Field(None, description="f(outcome, **settings) -> str | None: after the trainer "
                                   "finished; the returned line is printed last")


class RunConfig(_Strict):
    run_name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    output_dir: Path = Path("runs")
    api: ApiSettings = Field(default_factory=ApiSettings)
    backend: Literal["auto", "sglang", "vllm"] = "auto"
    model_path: str | None = Field(None, description="HF model id or local directory served and trained")
    build_model: ModelBuild | None = Field(None, description="build the model instead of giving model_path")
    atropos_checkout: Path | None = Field(None, description="an Atropos repository, for file environments")
    environments: list[EnvironmentSpec] = Field(min_length=1)
    verl: list[str] = Field(default_factory=list, description="Hydra overrides passed to the trainer verbatim")
    ray_address: str | None = Field(None, description="join an existing Ray cluster instead of starting one")
    server_api_key: Literal["auto", "per_run", "none"] = Field(
        "auto", description="a per-run key on the inference servers: auto = only when the run spans nodes (its "
        "servers then listen on a routable address); per_run = always; none = never"
    )
    mode: Literal["hybrid", "async"] = Field(
        "hybrid", description="hybrid = the servers pause while the actor updates; async = they keep generating on "
        "the previous weights (groups 1-2 steps stale, bounded by max_staleness; see docs/async.md)"
    )
    placement: Literal["shared", "standalone"] = Field(
        "shared", description="shared = verl's servers run on the training workers' devices; standalone (async "
        "mode) = on devices of their own, weights pushed through verl's checkpoint engine (see docs/async.md)"
    )
    max_staleness: int | None = Field(
        None, ge=0, description="steps a group's policy may lag before it is rejected (null: 2 in async mode)"
    )
    supervision: SupervisionSettings = Field(default_factory=SupervisionSettings)
    hooks: Hooks = Field(default_factory=Hooks)

    @model_validator(mode="after")
    def _one_model_source(self) -> RunConfig:
        if (self.model_path is None) == (self.build_model is None):
            raise ValueError("give exactly one of model_path and build_model")
        if self.hooks.prepare_model is not None and self.build_model is None:
            raise ValueError("hooks.prepare_model works on the model build_model makes; it needs build_model")
        return self

    @property
    def run_dir(self) -> Path:
        return self.output_dir / self.run_name


def load_run_config(path: str | Path) -> RunConfig:
    """Parse and validate a run YAML. A relative `atropos_checkout` is resolved against the YAML's own directory, so a
    config finds its checkout wherever it is started from; `output_dir` stays relative to the working directory."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(part) for part in err["loc"]) or "(top level)"
            lines.append(f"  {key}: {err['msg']}")
        raise ConfigError(f"{path}: invalid run config\n" + "\n".join(lines)) from None
    if config.atropos_checkout is not None and not config.atropos_checkout.is_absolute():
        config.atropos_checkout = (path.parent / config.atropos_checkout).resolve()
    for spec in config.environments:
        if spec.cwd is not None and not spec.cwd.is_absolute():
            spec.cwd = (path.parent / spec.cwd).resolve()
    return config
