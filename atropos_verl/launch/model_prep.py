# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Models a run builds for itself (no hub downloads): built once into the run dir, reused by later runs."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict

from atropos_verl.launch.config import ModelBuild, RunConfig


def _fingerprint(spec: ModelBuild) -> str:
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:16]


def prepare_model(config: RunConfig) -> str:
    """The model directory to serve and train: config.model_path, or the cached build of config.build_model."""
    if config.build_model is None:
        assert config.model_path is not None
        return config.model_path
    from atropos_verl.models.tiny import build_tiny_model

    spec = config.build_model
    out = config.run_dir.resolve() / "model"
    stamp = out / "atropos_verl_build.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("fingerprint") == _fingerprint(spec):
        return str(out)
    tmp = out.with_name("model.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    record: dict = {"fingerprint": _fingerprint(spec), "spec": spec.model_dump()}
    if spec.warm_start is None:
        build_tiny_model(tmp, seed=spec.seed, **spec.size)
    else:
        from atropos_verl.demo.warm_start import warm_start

        base = out.with_name("model.base")
        shutil.rmtree(base, ignore_errors=True)
        build_tiny_model(base, seed=spec.seed, **spec.size)
        ws = spec.warm_start
        result = warm_start(base, tmp, seed=ws.seed, data_seed=ws.data_seed, target_accuracy=ws.target_accuracy,
                            max_steps=ws.max_steps)
        shutil.rmtree(base, ignore_errors=True)
        record["warm_start"] = asdict(result)
    (tmp / stamp.name).write_text(json.dumps(record, default=str))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return str(out)
