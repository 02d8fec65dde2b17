# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""V4: a reader of vLLM's shared-memory message queue stops spinning soon after its last message.

The patch arrives through vLLM's own `vllm.general_plugins` entry point, so each test loads vLLM's plugins as its
processes do, in a fresh interpreter with the CPU platform requested (`VERL_PLATFORM=cpu`, as in every Ray process).
"""

from __future__ import annotations

import json

from .conftest import run_python

CPU = {"VERL_PLATFORM": "cpu"}

# A real MessageQueue (one writer, one local reader in a thread). The reader reads one message, then waits `idle`
# seconds for the next; its thread's CPU time over that wait is what a spinning reader takes from the trainer.
_IDLE_READ = """
import json, threading, time
from vllm.plugins import load_general_plugins
load_general_plugins()  # as vLLM's engine core and workers do before they build their queues
from vllm.distributed.device_communicators.shm_broadcast import MessageQueue

idle = 0.6
writer = MessageQueue(1, 1, max_chunk_bytes=1 << 20, max_chunks=2)
reader = MessageQueue.create_from_handle(writer.export_handle(), 0)
ready = threading.Thread(target=reader.wait_until_ready)
ready.start(); writer.wait_until_ready(); ready.join()
patched_window = reader._spin_condition.busy_loop_s

def idle_read_cpu(window):
    reader._spin_condition.busy_loop_s = window
    out = {}
    def read():
        reader.dequeue()
        start = time.thread_time()
        out["msg"] = reader.dequeue()
        out["cpu"] = time.thread_time() - start
    thread = threading.Thread(target=read)
    thread.start()
    writer.enqueue("first"); time.sleep(idle); writer.enqueue("second")
    thread.join()
    assert out["msg"] == "second", out
    return out["cpu"]

patched = idle_read_cpu(patched_window)
upstream = idle_read_cpu(1.0)
print(json.dumps({"window": patched_window, "patched_cpu": patched, "upstream_cpu": upstream}))
"""


def test_v4_reader_spins_for_the_short_window_only():
    got = json.loads(run_python(_IDLE_READ, env=CPU))
    assert got["window"] == 0.01
    # 0.6 s without a message: vLLM's 1 s window spins through all of it; the patched reader sleeps after 10 ms
    assert got["patched_cpu"] < 0.15, got
    assert got["upstream_cpu"] > 0.25, got


# A reader and a writer built after vLLM's plugins are loaded: their spin windows, and whether verl was imported.
_WINDOWS = """
import sys
from vllm.plugins import load_general_plugins
load_general_plugins()
import zmq
from vllm.distributed.device_communicators.shm_broadcast import SpinCondition
ctx = zmq.Context()
writer = SpinCondition(False, ctx, 'inproc://v4')
reader = SpinCondition(True, ctx, 'inproc://v4')
print(reader.busy_loop_s, writer.busy_loop_s, 'verl' in sys.modules)
ctx.destroy(linger=0)
"""


def test_v4_window_from_the_environment():
    assert run_python(_WINDOWS, env={**CPU, "ATROPOS_VERL_VLLM_BUSY_LOOP_S": "0.25"}) == "0.25 0 False"
    assert run_python(_WINDOWS, env={**CPU, "ATROPOS_VERL_VLLM_BUSY_LOOP_S": "not-a-number"}) == "0.01 0 False"


def test_v4_not_on_other_platforms_and_without_verl():
    # the plugin does not import verl (seconds of an engine core's start-up) and leaves other platforms alone
    assert run_python(_WINDOWS, env=CPU) == "0.01 0 False"
    assert run_python(_WINDOWS, env={"VERL_PLATFORM": "cuda"}) == "1 0 False"
