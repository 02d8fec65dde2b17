# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The servers' warm-up is best effort: a server that does not answer is logged and skipped, never an error.

That verl's real servers answer both routes (with the run's server key) is checked in tests/e2e/test_trainer_e2e.py."""

from __future__ import annotations

import logging

from atropos_verl.launch.processes import free_port
from atropos_verl.trainer.warm_up import ROUTES, warm_up_servers


def test_a_server_that_does_not_answer_is_skipped(caplog):
    address = f"127.0.0.1:{free_port('127.0.0.1')}"
    with caplog.at_level(logging.INFO, logger="atropos_verl.trainer.warm_up"):
        assert warm_up_servers([address], "tiny", timeout=5) == {address: {path: None for path, _ in ROUTES}}
    assert sum(address in r.getMessage() and "skipped" in r.getMessage() for r in caplog.records) == len(ROUTES)
    assert warm_up_servers([], "tiny") == {}
