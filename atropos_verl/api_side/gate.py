# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The trajectory API's door: every group an environment posts passes the data path's rules before atroposlib queues it.

An ASGI wrapper around atroposlib's own app, outermost, so it sees bodies before atroposlib inflates them. What it adds:

* Body limits, raw and decompressed, answered with 413 before anything is buffered beyond the limit (a 0.4 MB gzip
  body can inflate to 400 MB).
* `group_rules.validate` (the trainer's own rules), plus what only the API can judge: no NaN/inf anywhere in a group
  (one makes every later `/batch` answer 500, dropping the whole batch), and group sizes atroposlib can pack into a
  batch (one it cannot pack sits in the queue forever and stalls the run).
* A rejected group gets a 4xx naming the reason and is appended to the run's quarantine file; it never enters the
  queue. Good groups of the same `/scored_data_list` post are still queued.
* The door's counts (let through, rejected by reason and environment, rejected since the last group let through) go
  to `door_file` (`door_stats`), which the trainer reads: it cannot see groups that never reach a batch.
* `GET /reset_data` wipes every queue and registration: refused unless the launcher's token is sent.
"""

from __future__ import annotations

import hmac
import json
import logging
import zlib
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from atropos_verl.api_side.door_stats import DoorStats
from atropos_verl.group_rules import Limits, Reason, env_id_of, length_detail, validate
from atropos_verl.trainer.quarantine import QuarantineFile

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

INGRESS = ("/scored_data", "/scored_data_list")
TOKEN_HEADER = "x-atropos-verl-token"
NON_FINITE = "non_finite_number"
MIB = 1 << 20


@dataclass
class GateSettings:
    """What the launcher tells the API process (written as JSON next to the run's other files)."""

    max_prompt_length: int
    max_response_length: int
    batch_size: int
    quarantine_file: str
    limits: dict[str, Any] = field(default_factory=dict)
    max_body_bytes: int = 64 * MIB
    max_decompressed_bytes: int = 256 * MIB
    token: str | None = None
    door_file: str | None = None

    @classmethod
    def load(cls, path: str) -> GateSettings:
        with open(path, encoding="utf-8") as fh:
            return cls(**json.load(fh))


class Rejected(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def packing_reason(size: int, env_id: int | None, state: Any, batch_size: int) -> str | None:
    """Whether atroposlib can ever put a group of `size` sequences into a batch (None) or why not.

    A registered environment's smaller groups are buffered until they add up to its group_size; a larger one never
    does. Otherwise the queue is cut into packs of its largest group size (`grab_exact_from_heterogeneous_queue`), so
    every size must divide the batch and divide (or be divided by) every registered environment's group size.
    """
    envs = list(getattr(state, "envs", []) or [])
    registered = getattr(state, "batchsize", -1)
    batch = registered if isinstance(registered, int) and registered > 0 else batch_size
    if env_id is not None:
        if env_id >= len(envs):
            return Reason.BAD_ENV_ID
        expected = int(envs[env_id].get("group_size") or size)
        if size > expected:
            return Reason.UNPACKABLE
        size = expected
    if size > batch or batch % size:
        return Reason.UNPACKABLE
    for env in envs:
        g = int(env.get("group_size") or 0)
        if g and g % size and size % g:
            return Reason.UNPACKABLE
    return None


class Gate:
    """ASGI middleware in front of `atroposlib.api.server:app`."""

    def __init__(self, app: Callable[..., Awaitable[None]], settings: GateSettings, state: Any):
        self.app = app
        self.settings = settings
        self.state = state  # atroposlib's `app.state`: registered envs and batch size
        self.limits = Limits.from_mapping(settings.limits)
        self.quarantine = QuarantineFile(settings.quarantine_file)
        self.door = DoorStats(settings.door_file)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"].rstrip("/") or "/", scope["method"]
        if path == "/reset_data" and not self._token_ok(scope):
            await _respond(send, 403, {"detail": f"/reset_data needs the run's token in the {TOKEN_HEADER} header"})
            return
        if method == "POST" and path in INGRESS:
            await self._ingress(path, scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _token_ok(self, scope: Scope) -> bool:
        expected = self.settings.token
        if not expected:
            return True
        sent = _header(scope, TOKEN_HEADER)
        return sent is not None and hmac.compare_digest(sent, expected)

    async def _ingress(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await self._read_body(scope, receive)
            payload = json.loads(body)
        except Rejected as exc:
            logger.warning("refused a post to %s: %s", path, exc)
            await _respond(send, exc.status, {"detail": str(exc)})
            return
        except (ValueError, UnicodeDecodeError) as exc:
            await _respond(send, 400, {"detail": f"body is not JSON: {exc}"})
            return
        groups = [payload] if path == "/scored_data" else payload
        if not isinstance(groups, list):
            await _respond(send, 422, {"detail": "/scored_data_list takes a JSON list of groups"})
            return
        good, rejected = self.check(groups)
        if rejected:
            self._quarantine(groups, rejected)
        if not rejected:
            self.door.let_through(len(groups))
            await self.app(_with_body(scope, body), _replay(body), send)
            return
        accepted = 0
        if good and path == "/scored_data_list":
            forward = json.dumps([groups[i] for i in good]).encode()
            status = await _call_quietly(self.app, _with_body(scope, forward), _replay(forward))
            accepted = len(good) if status == 200 else 0
            self.door.let_through(accepted)
        reasons = [{"index": i, "reason": r} for i, r in rejected]
        detail = "; ".join(f"group {i}: {r}" for i, r in rejected)
        await _respond(send, 422, {"detail": f"rejected {detail}", "rejected": reasons, "accepted": accepted})

    def check(self, groups: Sequence[Any]) -> tuple[list[int], list[tuple[int, str]]]:
        """Indices of the groups that may be queued, and (index, reason) of the others."""
        good: list[int] = []
        rejected: list[tuple[int, str]] = []
        s = self.settings
        for i, group in enumerate(groups):
            reason = validate(i, group, s.max_prompt_length, s.max_response_length, self.limits)
            if not isinstance(reason, str):
                reason = _non_finite(group) or packing_reason(
                    len(group["tokens"]), group.get("env_id"), self.state, s.batch_size
                )
            if reason is None:
                good.append(i)
            else:
                rejected.append((i, reason))
        return good, rejected

    def _quarantine(self, groups: Sequence[Any], rejected: list[tuple[int, str]]) -> None:
        envs = list(getattr(self.state, "envs", []) or [])
        step = int(getattr(self.state, "status_dict", {}).get("step", 0))

        def env_name(env_id: Any) -> str | None:
            ok = isinstance(env_id, int) and not isinstance(env_id, bool) and 0 <= env_id < len(envs)
            return envs[env_id].get("desired_name") if ok else None

        counts = self.quarantine.write(step, groups, rejected, env_name=env_name, source="api")
        s = self.settings
        self.door.refused(
            (reason, env_name(env_id_of(groups[i])), length_detail(reason, groups[i], s.max_prompt_length,
                                                                 s.max_response_length))
            for i, reason in rejected
        )
        logger.warning("rejected %d group(s) at the door: %s", len(rejected), dict(counts))

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit, inflated_limit = self.settings.max_body_bytes, self.settings.max_decompressed_bytes
        declared = _header(scope, "content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise Rejected(413, f"body of {int(declared)} bytes is over the limit of {limit} bytes")
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Rejected(400, "client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise Rejected(413, f"body is over the limit of {limit} bytes")
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if "gzip" in (_header(scope, "content-encoding") or "").lower() and body:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                body = inflater.decompress(body, inflated_limit + 1)
            except zlib.error as exc:
                raise Rejected(400, f"invalid gzip body: {exc}") from None
            if len(body) > inflated_limit or inflater.unconsumed_tail:
                raise Rejected(413, f"gzip body inflates beyond the limit of {inflated_limit} bytes")
        return body


def _non_finite(group: Mapping[str, Any]) -> str | None:
    """NaN or inf anywhere (ref_logprobs, messages, masked positions...): JSON cannot carry it out of `/batch`."""
    try:
        json.dumps(group, allow_nan=False)
    except ValueError:
        return NON_FINITE
    return None


def _header(scope: Scope, name: str) -> str | None:
    key = name.encode()
    for k, v in scope.get("headers", []):
        if k.lower() == key:
            return v.decode("latin-1")
    return None


def _with_body(scope: Scope, body: bytes) -> Scope:
    """The request as atroposlib will see it: a plain (already inflated) JSON body of the given length."""
    headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() not in (b"content-length", b"content-encoding")]
    headers.append((b"content-length", str(len(body)).encode()))
    return {**scope, "headers": headers}


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _call_quietly(app: Callable[..., Awaitable[None]], scope: Scope, receive: Receive) -> int:
    """Run the app and keep only its status (the client gets the gate's answer instead)."""
    status = 500

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    await app(scope, receive, send)
    return status


async def _respond(send: Send, status: int, body: Mapping[str, Any]) -> None:
    raw = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]})
    await send({"type": "http.response.body", "body": raw})
