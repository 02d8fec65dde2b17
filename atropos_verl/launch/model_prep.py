# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Models a run builds for itself (no hub downloads): built once into the run dir, reused by later runs."""

from __future__ import annotations

import hashlib
import json
import shutil

from atropos_verl.launch import hooks
from atropos_verl.launch.config import RunConfig


def _fingerprint(config: RunConfig) -> str:
    spec = config.build_model.model_dump_json() if config.build_model else ""
    hook = config.hooks.prepare_model.model_dump_json() if config.hooks.prepare_model else ""
    return hashlib.sha256((spec + hook).encode()).hexdigest()[:16]


def prepare_model(config: RunConfig) -> str:
    """The model directory to serve and train: config.model_path, or the cached build of config.build_model (passed
    through `hooks.prepare_model` when there is one)."""
    if config.build_model is None:
        assert config.model_path is not None
        return config.model_path
    spec, hook = config.build_model, config.hooks.prepare_model
    out = config.run_dir.resolve() / "model"
    stamp = out / "atropos_verl_build.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("fingerprint") == _fingerprint(config):
        return str(out)
    from atropos_verl.models.tiny import build_tiny_model  # torch and transformers: seconds a cached model skips

    tmp = out.with_name("model.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    record: dict = {"fingerprint": _fingerprint(config), "spec": spec.model_dump()}
    if hook is None:
        build_tiny_model(tmp, seed=spec.seed, **spec.size)
    else:
        base = out.with_name("model.base")
        shutil.rmtree(base, ignore_errors=True)
        build_tiny_model(base, seed=spec.seed, **spec.size)
        record["prepare_model"] = {"call": hook.call, **hooks.prepare_model(hook, base, tmp)}
        shutil.rmtree(base, ignore_errors=True)
    (tmp / stamp.name).write_text(json.dumps(record, default=str))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return str(out)
