# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The driver's background import of the rollout replica class, through verl's own registry."""

from __future__ import annotations

import threading

import pytest
from verl.workers.rollout.replica import RolloutReplicaRegistry

from atropos_verl.trainer.replica_prefetch import prefetch_replica_class


@pytest.fixture
def registry():
    saved = dict(RolloutReplicaRegistry._registry)
    yield RolloutReplicaRegistry
    RolloutReplicaRegistry._registry.clear()
    RolloutReplicaRegistry._registry.update(saved)


def test_the_replica_class_loads_in_a_background_thread(registry):
    loaded_in: list[str] = []
    release = threading.Event()

    class Replica:
        pass

    def loader() -> type:
        loaded_in.append(threading.current_thread().name)
        release.wait(5)  # a slow import: the caller is not held up by it
        return Replica

    registry.register("slow-engine", loader)
    thread = prefetch_replica_class("slow-engine")
    assert thread is not None and thread.daemon
    assert thread.is_alive()  # returned while the import is still under way
    release.set()
    thread.join(5)
    assert loaded_in == ["prefetch-slow-engine-replica"]
    assert registry.get("slow-engine") is Replica


def test_a_failed_prefetch_fails_again_in_the_callers_lookup(registry):
    def loader() -> type:
        raise ImportError("no module named 'slow_engine'")

    registry.register("broken-engine", loader)
    thread = prefetch_replica_class("broken-engine")
    thread.join(5)
    assert not thread.is_alive()
    with pytest.raises(ImportError, match="slow_engine"):
        registry.get("broken-engine")


def test_an_unknown_engine_is_left_to_verls_own_error(registry):
    assert prefetch_replica_class("no-such-engine") is None
    with pytest.raises(ValueError, match="Unknown rollout mode: no-such-engine"):
        registry.get("no-such-engine")


def test_sglang_is_not_prefetched_since_its_loader_edits_the_environment():
    """verl's `_load_sglang` sets and deletes SGLANG_USE_CPU_ENGINE around its import: a prefetch thread running it
    beside the main thread's lookup could delete the variable under the other one (KeyError)."""
    import inspect

    from verl.workers.rollout import replica

    source = inspect.getsource(replica._load_sglang)
    assert 'os.environ["SGLANG_USE_CPU_ENGINE"] = "1"' in source and 'del os.environ["SGLANG_USE_CPU_ENGINE"]' in source
    assert prefetch_replica_class("sglang") is None
