# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Posting health: what the env side records against atroposlib's real API, and how the launcher reads it."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time

from atropos_verl.env_side.posting import TOO_LONG_SKIP, EnvStatus, LogWatch
from atropos_verl.launch.doctor import check_envs
from atropos_verl.launch.health import env_health
from atropos_verl.trainer.endpoints import Endpoints


def test_status_counts_and_logged_errors(tmp_path):
    status = EnvStatus(tmp_path / "e.status.json")
    status.update(env_id=3, name="gsm8k", time=time.time())
    status.update({"groups_posted": 2, "sequences_posted": 8})
    make = logging.getLogRecordFactory()
    logging.setLogRecordFactory(LogWatch(status, make))
    logger = logging.getLogger("test_posting")
    try:
        logger.error("Failed to send %s after retries: %s", "1 group", "boom")
        logger.warning("not counted")
        logging.getLogger("atroposlib.envs.base").warning(TOO_LONG_SKIP)
        logging.getLogger("atroposlib.envs.base").warning(TOO_LONG_SKIP)
    finally:
        logging.setLogRecordFactory(make)
    record = json.loads((tmp_path / "e.status.json").read_text())
    assert record["groups_posted"] == 2 and record["sequences_posted"] == 8 and record["errors_logged"] == 1
    assert record["last_error"].endswith("Failed to send 1 group after retries: boom")
    assert record["skipped_too_long"] == 2
    assert env_health({**record, "last_post_time": None}, now=record["time"]) == (
        "posting, 2 groups, 1 errors, 2 groups dropped by atroposlib as too long")
    assert record["pid"] == os.getpid()


def test_an_environments_own_logging_config_still_applies(tmp_path):
    """Installing the watch adds no handler: an environment's `logging.basicConfig` (25 of Atropos' environments
    call it) still configures logging, and with none configured Python still prints warnings."""
    import subprocess
    import sys

    script = (
        "import logging\n"
        "from atropos_verl.env_side.posting import EnvStatus, install\n"
        f"install(EnvStatus({str(tmp_path / 's.json')!r}))\n"
        "logging.getLogger('x').warning('unconfigured warning')\n"
        "logging.basicConfig(level=logging.INFO, format='configured %(message)s')\n"
        "logging.getLogger('x').info('info line')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "unconfigured warning" in out.stderr and "configured info line" in out.stderr


def test_health_phrases():
    now = 1000.0
    assert env_health({}) == "starting"
    assert env_health({"env_id": None}) == "waiting to register"
    assert env_health({"env_id": 0, "time": now - 10, "groups_posted": 0}, now=now).startswith("registered")
    assert env_health({"env_id": 0, "time": now - 10, "groups_posted": 5, "last_post_time": now - 2}, now=now) == (
        "posting, 5 groups, last 2s ago"
    )
    silent = env_health({"env_id": 0, "time": now - 900, "groups_posted": 0, "send_failures": 2}, now=now)
    assert silent == "silent, 0 groups, 2 failed posts"


def test_doctor_fails_a_silent_env_with_its_last_error(tmp_path):
    (tmp_path / "envs").mkdir()
    (tmp_path / "logs").mkdir()
    eps = Endpoints(addresses=["127.0.0.1:5"], backend="vllm", served_model_name="m", tokenizer_path="t", step=0)
    base = {"pid": os.getpid(), "env_id": 0, "servers": ["http://127.0.0.1:5/v1"]}
    (tmp_path / "envs" / "quiet.status.json").write_text(json.dumps(
        {**base, "name": "quiet", "time": time.time() - 600, "groups_posted": 0, "last_error": "TypeError: x"}))
    (tmp_path / "envs" / "busy.status.json").write_text(json.dumps(
        {**base, "name": "busy", "time": time.time(), "groups_posted": 4, "last_post_time": time.time(),
         "servers": ["http://127.0.0.1:9004/v1"]}))
    checks = {c.name: c for c in check_envs(tmp_path, eps)}
    assert not checks["env quiet posting"].ok and checks["env quiet posting"].hint == "TypeError: x"
    assert checks["env quiet servers"].ok
    assert checks["env busy posting"].ok
    assert not checks["env busy servers"].ok and "9004" in checks["env busy servers"].detail


def test_posts_are_counted_against_the_real_api(tmp_path):
    # atroposlib's own _send_scored_data_to_api posting to atroposlib's API app: accepted groups and refusals.
    from atroposlib.envs.base import BaseEnv

    from atropos_verl.env_side import posting
    from atropos_verl.launch.api_server import AtroposAPIProcess

    status = EnvStatus(tmp_path / "s.json")
    posting.install(status)
    api = AtroposAPIProcess(log_path=tmp_path / "api.log")
    api.start()
    try:
        class Poster(BaseEnv):
            async def get_next_item(self):
                return None

            async def evaluate(self, *args, **kwargs):
                return None

        env = object.__new__(Poster)

        class Cfg:
            rollout_server_url = api.url

        env.config = Cfg()
        env.env_id = 0
        group = {"tokens": [[1, 2, 3]] * 2, "masks": [[-100, 2, 3]] * 2, "scores": [0.0, 1.0]}
        asyncio.run(env._send_scored_data_to_api(dict(group)))
        asyncio.run(env._send_scored_data_to_api([dict(group), dict(group)]))
        asyncio.run(env._send_scored_data_to_api({"tokens": "not a list"}))  # the API answers 422
    finally:
        api.stop()
    record = json.loads((tmp_path / "s.json").read_text())
    assert record["groups_posted"] == 3 and record["sequences_posted"] == 6
    assert record["refused_by_api"] == 1 and "422" in record["last_error"]


def test_last_error_line_of_a_log(tmp_path):
    from atropos_verl.launch.log_lines import last_error_line

    log = tmp_path / "trainer.log"
    log.write_text("step 1\nTraceback (most recent call last):\n  x\nNothingToLearnError: 5 consecutive steps\nbye\n")
    assert last_error_line(log) == "NothingToLearnError: 5 consecutive steps"
    log.write_text("all fine\n\n")
    assert last_error_line(log) is None and last_error_line(log, or_last=True) == "all fine"
    assert last_error_line(tmp_path / "missing.log", or_last=True) == "(no log)"


ITEMS_SCRIPT = r'''
import asyncio, json, sys
from atroposlib.envs.base import APIServerConfig, BaseEnv, BaseEnvConfig
from atropos_verl.env_side import compat, posting
from atropos_verl.models.tiny import build_tiny_tokenizer

compat.install()
status = posting.EnvStatus(sys.argv[1])
posting.install(status)
build_tiny_tokenizer().save_pretrained(sys.argv[2])


class Items(BaseEnv):
    name = "items"

    async def get_next_item(self):
        return None

    async def evaluate(self, *args, **kwargs):
        return None

    async def collect_trajectories(self, item):
        group = {"tokens": [[1, 2, 3], [1, 2, 4]], "masks": [[-100, 2, 3], [-100, 2, 4]], "scores": [0.0, 1.0]}
        if item == "equal_scores":
            group["scores"] = [0.5, 0.5]
        elif item == "short_group":
            group = {key: value[:1] for key, value in group.items()}
        elif item == "too_long":
            group["tokens"] = [[1] * 50, [2] * 50]
        elif item == "exception":
            raise ValueError("the judge answered nothing")
        elif item == "returned_nothing":
            return None, []
        return group, []


config = BaseEnvConfig(tokenizer_name=sys.argv[2], group_size=2, use_wandb=False, ensure_scores_are_not_same=True)
env = Items(config, [APIServerConfig(base_url="http://127.0.0.1:9/v1", model_name="m", api_key="x")], testing=True)
env.max_token_len = 20


async def main():
    for item in ["equal_scores", "equal_scores", "short_group", "too_long", "exception", "returned_nothing"]:
        env.running_items[item + str(len(env.task_duration))] = {"item": item}
        await env.handle_env(item + str(len(env.task_duration)))


asyncio.run(main())
'''


def test_items_that_give_no_group_are_counted_with_why(tmp_path):
    """Each way atroposlib's real `handle_env` ends a rollout task without posting, in the status record."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", ITEMS_SCRIPT, str(tmp_path / "s.json"), str(tmp_path / "tok")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    record = json.loads((tmp_path / "s.json").read_text())
    assert record["items_started"] == 6 and record["items_without_group"] == 6
    reasons = {k.split("/", 1)[1]: v for k, v in record.items() if k.startswith("without_group/")}
    assert reasons == {"equal_scores": 2, "short_group": 1, "too_long": 1, "exception": 1, "returned_nothing": 1}
    assert env_health({**record, "env_id": 0, "time": time.time()}).endswith(
        "6 of 6 items gave no group (equal_scores x2, exception x1, returned_nothing x1, short_group x1, too_long x1)")
