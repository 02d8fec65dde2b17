# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The environment's health as the launcher sees it: one small JSON file per environment process.

atroposlib logs send failures and keeps going (`BaseEnv.handle_send_to_api` catches everything, a 4xx answer is
logged once and dropped), so an environment can be alive and registered while the API receives nothing. This module
records, in `$ATROPOS_VERL_ENV_STATUS_FILE`: registration (env id, name), groups and sequences the API accepted, the
last post time, posts that failed or were refused, errors the environment logged (with the last message), and the
servers it was routed to. The launcher's live view and `doctor`, and the trainer's per-environment metrics, read it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from atropos_verl.env_side import rollout_task
from atropos_verl.env_side.patching import wrap_method

STATUS_FILE_ENV = "ATROPOS_VERL_ENV_STATUS_FILE"

_post_status: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("atropos_verl_post", default=None)


class EnvStatus:
    """The status record of this process, rewritten atomically on every change."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self.record: dict[str, Any] = {
            "pid": os.getpid(),
            "started": time.time(),
            "env_id": None,
            "name": None,
            "time": None,  # registration time
            "groups_posted": 0,
            "sequences_posted": 0,
            "last_post_time": None,
            "first_post_time": None,
            "imported": None,  # when the environment class was imported (the runner sets it)
            "send_failures": 0,
            "refused_by_api": 0,
            "errors_logged": 0,
            "skipped_too_long": 0,  # groups atroposlib dropped before posting (`TOO_LONG_SKIP`)
            "last_error": None,
            "servers": [],
            "declared_servers": [],
        }

    def update(self, counts: dict[str, int] | None = None, **fields: Any) -> None:
        """Add `counts` to counters and set `fields`, then rewrite the file once."""
        with self._lock:
            for key, n in (counts or {}).items():
                self.record[key] = int(self.record.get(key) or 0) + n
            self.record.update(fields)
            self._write()

    def _write(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.record), encoding="utf-8")
        tmp.replace(self.path)


#: atroposlib 0.4.0 drops a group whose longest sequence reaches the trainer's `max_token_len` (prompt cap + response
#: cap + 1) with only this warning (`BaseEnv.handle_send_to_api`): such a group never reaches the API.
TOO_LONG_SKIP = "Token length is too long in a group, skipping..."
#: What atroposlib logs when a rollout task ends without a group, and the reason each message stands for.
DROP_MESSAGES = (
    (TOO_LONG_SKIP, "too_long"),
    ("Scores are the same in a group, skipping...", "equal_scores"),
    ("Group structure invalid, or token count mismatch", "short_group"),  # fewer sequences than group_size
    ("Error in collect_trajectories", "exception"),
    ("Error in scoring", "exception"),
)
#: A task that posted nothing and left none of those messages: the environment itself returned no group. Posts that
#: failed or that the API refused (its door) are `post_failed` and `refused_by_api`.
RETURNED_NOTHING = "returned_nothing"


#: Set by `envs check`: every sequence posted (tokens and masks) is appended here, to compare with what was trained.
POSTED_FILE_ENV = "ATROPOS_VERL_POSTED_FILE"


def record_posted(payload: Any) -> None:
    path = os.environ.get(POSTED_FILE_ENV)
    if not path:
        return
    groups = payload if isinstance(payload, list) else [payload]
    with open(path, "a", encoding="utf-8") as fh:
        for group in groups:
            if isinstance(group, dict):
                for tokens, masks in zip(group.get("tokens") or [], group.get("masks") or [], strict=False):
                    fh.write(json.dumps({"tokens": list(tokens), "masks": list(masks)}) + "\n")


def drop_reason(message: object) -> str | None:
    text = str(message)
    return next((reason for prefix, reason in DROP_MESSAGES if text.startswith(prefix)), None)


class LogWatch:
    """A log-record factory that counts, in the status record, ERROR records of any logger (atroposlib logs and
    swallows) with the last message, and the groups atroposlib drops as too long.

    A record factory rather than a handler on the root logger: a handler there would turn the environment's own
    `logging.basicConfig(...)` into a no-op and hide the warnings Python prints when no logging is configured.
    """

    def __init__(self, status: EnvStatus, make: Callable[..., logging.LogRecord]):
        self.status = status
        self.make = make

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.make(*args, **kwargs)
        if (reason := drop_reason(record.msg)) is not None and (task := rollout_task.current()) is not None:
            task.drops.append(reason)
        if record.levelno >= logging.ERROR:
            try:
                message = record.getMessage()
            except Exception:  # a broken log call must not break the environment
                message = str(record.msg)
            if self.status.record.get("exited"):  # what ended the process stays its last error (shutdown noise)
                self.status.update({"errors_logged": 1})
            else:
                self.status.update({"errors_logged": 1}, last_error=f"{record.name}: {message}"[:2000])
        elif record.msg == TOO_LONG_SKIP:
            self.status.update({"skipped_too_long": 1})
        return record


def _groups_in(payload: Any) -> tuple[int, int]:
    groups = payload if isinstance(payload, list) else [payload]
    groups = [g for g in groups if isinstance(g, dict)]
    return len(groups), sum(len(g.get("tokens") or []) for g in groups)


class _RecordingPost:
    """Wraps the `session.post(...)` context manager atroposlib uses to post groups; notes the answer's status."""

    def __init__(self, inner: Any):
        self.inner = inner

    async def __aenter__(self) -> Any:
        resp = await self.inner.__aenter__()
        box = _post_status.get()
        if box is not None:
            box["status"] = resp.status
            if resp.status >= 400:
                box["text"] = (await resp.text())[:1000]
        return resp

    async def __aexit__(self, *exc: Any) -> Any:
        return await self.inner.__aexit__(*exc)


def install(status: EnvStatus) -> None:
    from atroposlib.envs.base import BaseEnv

    from atropos_verl.env_side import routing

    def make_register(register):
        async def register_env(self, *args, **kwargs):
            result = await register(self, *args, **kwargs)
            status.update(
                env_id=self.env_id,
                name=self.name,
                time=time.time(),
                servers=routing.RECORD.routed,
                declared_servers=routing.RECORD.declared,
            )
            return result

        return register_env

    def make_post(post):
        def _post_json_with_compression(self, *args, **kwargs):
            return _RecordingPost(post(self, *args, **kwargs))

        return _post_json_with_compression

    def make_send(send):
        async def _send_scored_data_to_api(self, scored_data):
            groups, sequences = _groups_in(scored_data)
            box: dict[str, Any] = {}
            token = _post_status.set(box)
            try:
                result = await send(self, scored_data)
            except Exception as exc:  # not CancelledError: a post cut off by shutdown did not fail
                status.update({"send_failures": 1}, last_error=f"posting {groups} group(s) failed: {exc!r}"[:2000])
                if (task := rollout_task.current()) is not None:
                    task.drops.append("post_failed")
                raise
            finally:
                _post_status.reset(token)
            if box.get("status", 200) >= 400:
                error = f"API answered {box['status']} to {groups} group(s): {box.get('text')}"
                status.update({"refused_by_api": groups}, last_error=error)
                if (task := rollout_task.current()) is not None:
                    task.drops.append("refused_by_api")
            else:
                if (task := rollout_task.current()) is not None:
                    task.posted += groups
                record_posted(scored_data)
                now = time.time()
                first = status.record.get("first_post_time") or now
                status.update({"groups_posted": groups, "sequences_posted": sequences}, last_post_time=now,
                              first_post_time=first)
            return result

        return _send_scored_data_to_api

    wrap_method(BaseEnv, "register_env", make_register)
    wrap_method(BaseEnv, "_post_json_with_compression", make_post)
    wrap_method(BaseEnv, "_send_scored_data_to_api", make_send)
    def count_task(_env: Any, task: rollout_task.TaskRecord) -> None:
        """Each rollout task: started, and when it posted nothing, why (`without_group/<reason>`)."""
        counts = {"items_started": 1}
        if not task.posted:
            reason = task.drops[0] if task.drops else RETURNED_NOTHING
            counts.update({"items_without_group": 1, f"without_group/{reason}": 1})
        status.update(counts)

    rollout_task.install()
    rollout_task.add_finisher(count_task)
    current = logging.getLogRecordFactory()
    logging.setLogRecordFactory(LogWatch(status, current.make if isinstance(current, LogWatch) else current))
    status.update()
