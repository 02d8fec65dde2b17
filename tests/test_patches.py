# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The registry of changes made to third-party packages (atropos_verl/patches.py) is complete and true: every patch
site in the package is listed, each entry's function and test exist, each target exists in the installed packages,
and `doctor --patches` prints them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from atropos_verl.cli import app
from atropos_verl.patches import PATCHES, by_id, resolve, target_state

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "atropos_verl"
# What a patch site looks like in this package's source (the mechanisms themselves are defined in import_hooks.py
# and env_side/patching.py).
SITE = re.compile(
    r"\bwhen_imported\(|\bwrap_method\(|Registry\.register\(|\bmetadata\.version = |ray_constants\.\w+ = "
    r"|server_manager\.\w+ = |\.is_pause = |tracking\.logger\[|\bVLLM_KEY_ENV\] = |module\.CPUOffloadPolicy = "
    r"|_STAND_INS = |module\.LLMServerManager = |module\.logprobs_from_logits = "
)
MECHANISM_MODULES = {"atropos_verl/import_hooks.py", "atropos_verl/env_side/patching.py"}


def _module_file(dotted: str) -> str:
    module = dotted.split(":", 1)[0]
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    return str((path if path.is_file() else path.with_suffix("") / "__init__.py").relative_to(ROOT))


def test_every_patch_site_is_in_the_registry():
    listed = {_module_file(p.applied_by) for p in PATCHES}
    sites = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        if rel in MECHANISM_MODULES or rel == "atropos_verl/patches.py":
            continue
        lines = [n for n, line in enumerate(path.read_text().splitlines(), 1)
                 if SITE.search(line) and not line.lstrip().startswith(("def ", "#"))]
        if lines:
            sites[rel] = lines
    unlisted = {rel: lines for rel, lines in sites.items() if rel not in listed}
    assert not unlisted, f"patch sites missing from atropos_verl/patches.py: {unlisted}"
    assert len(sites) >= 15


def test_ids_are_unique_and_fields_filled():
    assert len(by_id()) == len(PATCHES)
    for p in PATCHES:
        assert all(getattr(p, f) for f in ("target", "mechanism", "applied_by", "process", "when", "why", "upstream"))


@pytest.mark.parametrize("patch", PATCHES, ids=lambda p: p.id)
def test_applier_and_test_exist(patch):
    try:
        assert resolve(patch.applied_by) is not None
    except ModuleNotFoundError as exc:  # it lives in a module that imports an engine this world lacks (SGLang)
        assert exc.name == "sglang", exc
        module, _, name = patch.applied_by.partition(":")
        tree = ast.parse((ROOT / _module_file(module)).read_text())
        assert name in {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    file, _, name = patch.test.partition("::")
    tree = ast.parse((ROOT / file).read_text())
    names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    assert name in names, f"{patch.id}: {patch.test} does not exist"


def test_targets_exist_in_the_installed_packages():
    states = {p.id: target_state(p) for p in PATCHES}
    for engine_only in ("sglang_drain", "sglang_app_middleware", "sglang_health_no_generation",
                        "sglang_control_client_key"):
        assert states[engine_only] in ("not installed", "present")  # SGLang is a GPU extra
    missing = {k: v for k, v in states.items() if v not in ("present", "not installed")}
    assert not missing, missing
    assert sum(v == "present" for v in states.values()) >= len(PATCHES) - 4


def test_doctor_prints_the_registry():
    result = CliRunner().invoke(app, ["doctor", "--patches"])
    assert result.exit_code == 0, result.output
    for p in PATCHES:
        assert p.id in result.output
    assert "present" in result.output
