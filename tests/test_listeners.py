# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Listener collection over a run's recorded sessions, with a real listening process."""

from __future__ import annotations

import json
import sys
import time

from atropos_verl.launch.listeners import Listener, run_listeners
from atropos_verl.launch.processes import start_process, stop_process_group

SERVE = ("import socket,time; a=socket.socket(); a.bind(('127.0.0.1',0)); a.listen(); "
         "b=socket.socket(); b.bind(('0.0.0.0',0)); b.listen(); print(a.getsockname()[1], b.getsockname()[1], "
         "flush=True); time.sleep(60)")


def test_loopback_addresses():
    def lo(ip: str) -> bool:
        return Listener("c", "p", 1, ip, 1).loopback

    assert lo("127.0.0.1") and lo("::1") and lo("::ffff:127.0.0.1")
    assert not lo("0.0.0.0") and not lo("::") and not lo("192.0.2.2") and not lo("::ffff:192.0.2.2")


def test_run_listeners_reports_each_socket_of_a_recorded_session(tmp_path):
    log = tmp_path / "serve.log"
    proc = start_process([sys.executable, "-c", SERVE], log_path=log)
    try:
        deadline = time.monotonic() + 30
        while not log.read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.1)
        lo_port, any_port = map(int, log.read_text().split())
        (tmp_path / "processes.json").write_text(json.dumps([{"name": "srv", "role": "env",
                                                               "sessions": [proc.pid]}]))
        found = {(x.ip, x.port): x for x in run_listeners(tmp_path)}
        assert found[("127.0.0.1", lo_port)].loopback and found[("127.0.0.1", lo_port)].pid == proc.pid
        assert not found[("0.0.0.0", any_port)].loopback
        assert found[("0.0.0.0", any_port)].child == "srv"
    finally:
        stop_process_group(proc, grace=5)
    assert run_listeners(tmp_path / "nowhere") == []
