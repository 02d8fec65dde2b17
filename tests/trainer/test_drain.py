# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The drained-sync dispatch against verl's real replica classes, and the engine-level drain logic.

The vLLM engine path runs for real in tests/e2e/test_trainer_e2e.py; SGLang is not installable on CPU, so its drain
is exercised here against a tokenizer manager that parks requests the way SGLang's does (`is_pause_cond`).
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from verl.workers.rollout.replica import RolloutReplicaRegistry, get_rollout_replica_class
from verl.workers.rollout.vllm_rollout.vllm_async_server import vLLMHttpServer, vLLMReplica

from atropos_verl.trainer.drain import (
    DrainTimeoutError,
    RolloutDrain,
    engines,
    install_draining_replicas,
    resume_and_report,
)
from atropos_verl.trainer.drain.engines import _accepts, drain_sglang, drain_vllm, vllm_sleep_keeps_queue


def test_vllm_replica_is_verls_with_drain_and_keeping_sleep():
    install_draining_replicas()
    install_draining_replicas()  # idempotent
    from atropos_verl.trainer.drain.vllm_replica import DrainingVLLMHttpServer, DrainingVLLMReplica

    assert get_rollout_replica_class("vllm") is DrainingVLLMReplica
    assert issubclass(DrainingVLLMReplica, vLLMReplica)
    assert issubclass(DrainingVLLMHttpServer, vLLMHttpServer)
    assert DrainingVLLMHttpServer._sleep_hybrid is not vLLMHttpServer._sleep_hybrid
    # Only the drain and the sleep differ; generation, wake-up, abort and resume stay verl's.
    for name in ("generate", "wake_up", "sleep", "abort_all_requests", "resume_generation"):
        assert getattr(DrainingVLLMHttpServer, name) is getattr(vLLMHttpServer, name)


def test_installed_vllm_has_the_pause_and_sleep_modes_relied_on():
    from vllm.v1.engine.async_llm import AsyncLLM
    from vllm.v1.engine.core_client import AsyncMPClient

    assert _accepts(AsyncLLM.pause_generation, "mode")
    assert vllm_sleep_keeps_queue(AsyncLLM)
    # The drain pauses through the engine core itself (no fixed sleep after it); without these it falls back to
    # pause_generation, which still drains but sleeps 20 ms every step.
    assert _accepts(AsyncMPClient.pause_scheduler_async, "mode")
    assert _accepts(AsyncMPClient.pause_scheduler_async, "clear_cache")


def test_sglang_replica_loads_through_verls_loader():
    install_draining_replicas()
    try:
        import sglang  # noqa: F401
    except ImportError:
        # verl's own loader runs first, so a missing engine fails the same way it would without the drain.
        with pytest.raises(ImportError):
            RolloutReplicaRegistry.get("sglang")
        return
    from verl.workers.rollout.sglang_rollout.async_sglang_server import SGLangHttpServer, SGLangReplica

    from atropos_verl.trainer.drain.sglang_replica import DrainingSGLangHttpServer, DrainingSGLangReplica

    assert RolloutReplicaRegistry.get("sglang") is DrainingSGLangReplica
    assert issubclass(DrainingSGLangReplica, SGLangReplica) and issubclass(DrainingSGLangHttpServer, SGLangHttpServer)


def test_drain_refuses_replicas_that_cannot_drain():
    from atropos_verl.trainer.drain.vllm_replica import DrainingVLLMReplica

    with pytest.raises(TypeError, match="vLLMReplica"):
        RolloutDrain([object.__new__(vLLMReplica)], timeout=1)
    RolloutDrain([object.__new__(DrainingVLLMReplica)], timeout=1)


class ReaderCountingLock:
    """The part of SGLang's `aio_rwlock.RWLock` the drain reads: a reader count and `is_locked()`."""

    def __init__(self) -> None:
        self._readers = 0

    async def is_locked(self) -> bool:
        return self._readers > 0

    @contextlib.asynccontextmanager
    async def reader(self):
        self._readers += 1
        try:
            yield
        finally:
            self._readers -= 1


class ParkingTokenizerManager:
    """Parks requests as SGLang's TokenizerManager.generate_request does (0.5.12 and 0.5.14): register the request in
    `rid_to_state`, then wait on `is_pause_cond` while `is_pause`, then run holding `model_update_lock`'s reader side.
    """

    def __init__(self) -> None:
        self.is_pause = False
        self.is_pause_cond = asyncio.Condition()
        self.model_update_lock = ReaderCountingLock()
        self.rid_to_state: dict[str, float] = {}
        self.finished: list[str] = []

    async def generate(self, rid: str, seconds: float) -> None:
        self.rid_to_state[rid] = seconds
        try:
            async with self.is_pause_cond:
                await self.is_pause_cond.wait_for(lambda: not self.is_pause)
            async with self.model_update_lock.reader():
                await asyncio.sleep(seconds)
        finally:
            del self.rid_to_state[rid]
        self.finished.append(rid)

    async def continue_generation(self) -> None:
        async with self.is_pause_cond:
            self.is_pause = False
            self.is_pause_cond.notify_all()


def test_sglang_drain_lets_running_finish_and_parks_new():
    async def scenario():
        tm = ParkingTokenizerManager()
        running = asyncio.create_task(tm.generate("old", 0.3))
        await asyncio.sleep(0.05)
        drain = asyncio.create_task(drain_sglang(tm, timeout=5, poll=0.01))
        await asyncio.sleep(0.05)
        late = asyncio.create_task(tm.generate("new", 0.01))
        report = await drain
        assert report["drained"] and report["in_flight"] == 1 and report["left"] == 0
        assert tm.finished == ["old"] and not late.done()  # the late request waits through the sync
        await tm.continue_generation()
        await asyncio.wait_for(late, 2)
        await running
        assert tm.finished == ["old", "new"]

    asyncio.run(scenario())


def test_sglang_drain_ends_while_parked_requests_keep_arriving():
    """atroposlib's SGLang server class sends a one-token health completion every second: those park during the drain
    and stay registered in `rid_to_state`, so a drain that waits for `rid_to_state` to empty never ends."""

    async def scenario():
        tm = ParkingTokenizerManager()
        running = asyncio.create_task(tm.generate("env-request", 0.2))
        await asyncio.sleep(0.02)
        drain = asyncio.create_task(drain_sglang(tm, timeout=3, poll=0.01))
        parked = []
        for k in range(5):  # health checks and new env requests arrive throughout the drain
            parked.append(asyncio.create_task(tm.generate(f"health-{k}", 0.001)))
            await asyncio.sleep(0.05)
        report = await asyncio.wait_for(drain, 3)
        assert report["drained"] and report["left"] == 0 and report["seconds"] < 1.0, report
        assert tm.finished == ["env-request"] and len(tm.rid_to_state) == 5  # parked, registered, not running
        await tm.continue_generation()
        await asyncio.wait_for(asyncio.gather(running, *parked), 2)
        assert not tm.rid_to_state

    asyncio.run(scenario())


def test_sglang_drain_times_out_with_the_count_left():
    async def scenario():
        tm = ParkingTokenizerManager()
        task = asyncio.create_task(tm.generate("slow", 5))
        await asyncio.sleep(0.02)
        report = await drain_sglang(tm, timeout=0.1, poll=0.01)
        assert not report["drained"] and report["left"] == 1
        task.cancel()

    asyncio.run(scenario())


def test_sglang_drain_fails_clearly_on_an_incompatible_engine():
    with pytest.raises(RuntimeError, match="is_pause_cond"):
        asyncio.run(drain_sglang(object(), timeout=1))


class PausingEngine:
    """vLLM's pause_generation signature; completes after `seconds` (the running requests finishing)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls: list[dict] = []

    async def pause_generation(self, *, mode="abort", wait_for_inflight_requests=None, clear_cache=True):
        self.calls.append({"mode": mode, "clear_cache": clear_cache})
        await asyncio.sleep(self.seconds)


def test_vllm_drain_waits_in_wait_mode_and_keeps_cache():
    engine = PausingEngine(0.05)
    report = asyncio.run(drain_vllm(engine, timeout=2))
    assert report["drained"] and engine.calls == [{"mode": "wait", "clear_cache": False}]
    slow = asyncio.run(drain_vllm(PausingEngine(2), timeout=0.05))
    assert not slow["drained"]


class EngineCore:
    """The engine core's pause: completes once the running requests are done (`seconds`); records its arguments."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls: list[dict] = []

    async def pause_scheduler_async(self, mode="abort", clear_cache=True) -> None:
        self.calls.append({"mode": mode, "clear_cache": clear_cache})
        await asyncio.sleep(self.seconds)


class FrontEnd:
    """An AsyncLLM: `output_processor.request_states` holds what the front end still tracks."""

    def __init__(self, seconds: float, requests: dict[str, float]) -> None:
        self.engine_core = EngineCore(seconds)
        self.output_processor = type("OutputProcessor", (), {})()
        self.output_processor.request_states = dict.fromkeys(requests)
        self.handed_on_after = requests  # request id -> seconds after the pause until its last output is handed on

    async def pause_generation(self, *, mode="abort", wait_for_inflight_requests=None, clear_cache=True):
        raise AssertionError("the drain pauses through the engine core when it can")

    async def run(self, timeout: float) -> dict:
        async def hand_on(request_id: str, after: float) -> None:
            await asyncio.sleep(self.engine_core.seconds + after)
            self.output_processor.request_states.pop(request_id)

        tasks = [asyncio.create_task(hand_on(r, s)) for r, s in self.handed_on_after.items() if s is not None]
        report = await drain_vllm(self, timeout=timeout)
        report["still_tracked"] = sorted(self.output_processor.request_states)
        for task in tasks:
            task.cancel()
        return report


def test_vllm_drain_pauses_the_engine_core_and_waits_only_for_outputs_of_tracked_requests(monkeypatch):
    # A grace far beyond the drain's timeout: an idle engine must not sit through it.
    monkeypatch.setattr(engines, "OUTPUT_GRACE_S", 30.0)
    idle = FrontEnd(0.01, {})
    report = asyncio.run(idle.run(timeout=2))
    assert report["drained"] and report["in_flight"] == 0
    assert idle.engine_core.calls == [{"mode": "wait", "clear_cache": False}]

    # Requests running at the pause: the drain returns once the front end has handed on their last outputs.
    busy = FrontEnd(0.05, {"a": 0.02, "b": 0.05})
    report = asyncio.run(busy.run(timeout=2))
    assert report["drained"] and report["in_flight"] == 2 and report["still_tracked"] == []


def test_vllm_drain_waits_for_outputs_at_most_vllms_own_grace(monkeypatch):
    """A request queued behind the pause stays tracked until the resume; the drain does not wait for it."""
    monkeypatch.setattr(engines, "OUTPUT_GRACE_S", 0.05)
    queued = FrontEnd(0.01, {"queued": None, "ran": 0.0})
    report = asyncio.run(queued.run(timeout=2))
    assert report["drained"] and report["in_flight"] == 2 and report["still_tracked"] == ["queued"]


class Replica:
    def __init__(self, result: dict) -> None:
        self.result = result

    async def drain_generation(self, timeout: float) -> list[dict]:
        return [self.result]


def test_drain_timeout_aborts_with_warning_or_fails():
    ok = {"drained": True, "in_flight": 2, "left": 0, "seconds": 0.1}
    stuck = {"drained": False, "in_flight": 3, "left": 2, "seconds": 1.0}
    aborted: list[bool] = []
    metrics = RolloutDrain([Replica(ok), Replica(stuck)], timeout=1, abort=lambda: aborted.append(True)).drain()
    assert aborted == [True] and metrics["sync/aborted_requests"] == 2 and metrics["sync/in_flight_at_drain"] == 5
    with pytest.raises(DrainTimeoutError, match="drain_timeout"):
        RolloutDrain([Replica(stuck)], timeout=1, on_timeout="fail", abort=lambda: None).drain()
    clean = RolloutDrain([Replica(ok)], timeout=1, abort=lambda: pytest.fail("no abort when drained")).drain()
    assert clean["sync/aborted_requests"] == 0


def test_drain_wait_counts_only_servers_that_had_requests_running():
    """Waiting for running requests is generation time; a server with none only paused (the sync's own cost)."""
    busy = {"drained": True, "in_flight": 2, "left": 0, "seconds": 0.3}
    idle = {"drained": True, "in_flight": 0, "left": 0, "seconds": 0.5}
    metrics = RolloutDrain([Replica(busy), Replica(idle)], timeout=1).drain()
    assert metrics["sync/drain_seconds_max"] == 0.5 and metrics["sync/drain_wait_seconds"] == 0.3
    assert RolloutDrain([Replica(idle)], timeout=1).drain()["sync/drain_wait_seconds"] == 0.0


def test_the_drain_keeps_each_servers_reading_for_the_overlap():
    """The servers report their answered counters as the pause begins: the async step's overlap needs no extra call."""
    reading = {"version": 3, "answered": 12, "completion_tokens": 96, "aborted": 0}
    drain = RolloutDrain([Replica({"drained": True, "in_flight": 0, "left": 0, "seconds": 0.0, "served": reading}),
                          Replica({"drained": True, "in_flight": 0, "left": 0, "seconds": 0.0})], timeout=1)
    assert drain.last_served == []
    drain.drain()
    assert drain.last_served == [reading]  # the server without counters (SGLang) reports none


class ServerHandle:
    """A Ray actor handle of the server: `handle.method.remote()` runs the real server method."""

    def __init__(self, server) -> None:
        self.server = server

    def __getattr__(self, name: str):
        method = getattr(self.server, name)
        return type("Method", (), {"remote": staticmethod(method)})()


class ResumingEngine:
    def __init__(self) -> None:
        self.resumed = 0

    async def resume_generation(self) -> None:
        self.resumed += 1


def test_the_resume_reports_the_served_counters_in_the_same_call(monkeypatch):
    """verl's resume (engine on the first server, then every gate) with each server's counters, one call per server."""
    install_draining_replicas()
    from atropos_verl.trainer.drain import policy_stamp
    from atropos_verl.trainer.drain.vllm_replica import DrainingVLLMHttpServer, DrainingVLLMReplica

    engines_ = [ResumingEngine(), ResumingEngine()]
    servers = []
    for rank, engine in enumerate(engines_):
        server = object.__new__(DrainingVLLMHttpServer)
        server.node_rank, server.engine = rank, engine
        server._submission_paused, server._rejecting, server._resume_event = True, False, asyncio.Event()
        servers.append(server)
    replica = object.__new__(DrainingVLLMReplica)
    replica.servers = [ServerHandle(server) for server in servers]
    monkeypatch.setitem(policy_stamp._STATE, "version", 7)

    served = resume_and_report([replica])  # auto-awaited, as the trainer calls it
    assert [e.resumed for e in engines_] == [1, 0]  # the engine resumes once, through the first server
    assert all(not s._submission_paused and s._resume_event.is_set() for s in servers)
    assert served == [policy_stamp.stats()] and served[0]["version"] == 7


def test_replicas_without_counters_are_resumed_the_verl_way():
    class SGLangLike:
        def __init__(self) -> None:
            self.resumed = False

        async def resume_generation(self) -> None:
            self.resumed = True

    replica = SGLangLike()
    assert resume_and_report([replica]) == [] and replica.resumed
