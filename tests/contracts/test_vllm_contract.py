# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""What the GPU path assumes of the vLLM release verl 0.9.1 pins (its `[vllm]` extra), read from its source. The CPU
world runs vLLM's CPU build (another release); these facts must hold for both."""

from __future__ import annotations

import pytest

from atropos_verl.patches import CPU, PATCHES, target_alternatives

from .upstream import fetch, find_class, find_function, parse, resolves, self_attributes, source_of, verl_root, vllm_pin

FOLDERS = ("vllm/entrypoints/", "vllm/v1/engine/", "vllm/envs.py", "vllm/distributed/device_communicators/")


@pytest.fixture(scope="module")
def vllm():
    return fetch("vllm", vllm_pin(), FOLDERS)


def test_the_app_verl_builds_takes_our_middleware_and_the_key_from_the_environment(vllm):
    """`policy_stamp.MIDDLEWARE` reaches the app as `--middleware`; `VLLM_API_KEY` (server_key) guards it."""
    build_app = source_of(find_function(parse(vllm / "vllm/entrypoints/openai/api_server.py"), "build_app"))
    assert "for middleware in args.middleware:" in build_app and "app.add_middleware(imported)" in build_app
    assert "envs.VLLM_API_KEY" in build_app and "AuthenticationMiddleware" in build_app
    verl_server = source_of(parse(verl_root() / "verl/workers/rollout/vllm_rollout/vllm_async_server.py"))
    assert "build_app(args" in verl_server


def test_the_drain_finds_the_pause_and_sleep_modes(vllm):
    """`engines.drain_vllm` pauses in wait mode through the engine core; `_sleep_hybrid` sleeps with mode=keep."""
    async_llm = find_class(parse(vllm / "vllm/v1/engine/async_llm.py"), "AsyncLLM")
    pause = find_function(async_llm, "pause_generation")
    assert {"mode", "clear_cache"} <= {a.arg for a in pause.args.kwonlyargs}
    assert "mode" in {a.arg for a in find_function(async_llm, "sleep").args.args}
    assert {"output_processor", "engine_core"} <= self_attributes(async_llm)
    client = find_class(parse(vllm / "vllm/v1/engine/core_client.py"), "AsyncMPClient")
    pause_core = find_function(client, "pause_scheduler_async")
    assert {"mode", "clear_cache"} <= {a.arg for a in pause_core.args.args + pause_core.args.kwonlyargs}


@pytest.mark.parametrize("patch", [p for p in PATCHES if p.package == "vllm" and p.when != CPU], ids=lambda p: p.id)
def test_vllm_patch_targets_exist_in_the_pin(vllm, patch):
    """`doctor --patches` names one target per change; at least one of its spellings exists in the GPU pin."""
    assert any(resolves(vllm, t) for t in target_alternatives(patch)), f"{patch.id} in vllm {vllm_pin()}"
