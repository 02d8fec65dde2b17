# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Trainer-side client of the Atropos trajectory API (atroposlib 0.4.0, `atroposlib.api.server:app`).

The trainer owns three facts the API cannot know: how many sequences make a step, how long a sequence may be, and
which step it is at. The client registers them, survives API restarts by registering again at the current step, and
never retries a 4xx (those are bugs in what we send, not transient conditions).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import msgspec

logger = logging.getLogger(__name__)

_decoder = msgspec.json.Decoder()

#: Written by the trainer in its run dir while it waits for batches (PollHealth), read by the launcher.
API_CLIENT_FILE = "api_client.json"


class AtroposAPIError(RuntimeError):
    """The API answered in a way that retrying cannot fix (4xx, or a body that is not the documented shape)."""


@dataclass
class Registration:
    """Body of `POST /register`.

    batch_size: sequences (not groups) per trainer step = train_batch_size (prompts) x group size (rollout.n). The
        API cuts the queue into batches of exactly this many sequences.
    max_token_len: the longest sequence the trainer accepts, plus one. Environments drop a sequence when
        `len(tokens) >= max_token_len` (atroposlib/envs/base.py), so the +1 keeps max prompt + max response legal.
    checkpoint_dir / save_checkpoint_interval: where and how often the trainer saves; environments read them back
        from `/register-env` (they do not write there themselves).
    starting_step: the step the trainer resumes from. The API's step counter starts here, so after a resume from
        step k the environments see step k, not 0, and their `total_steps` stop condition stays correct.
    num_steps: total trainer steps; environments with `total_steps=-1` adopt it.
    wandb_project / wandb_group: environments that log to wandb join this project and group.
    """

    batch_size: int
    max_token_len: int
    checkpoint_dir: str
    save_checkpoint_interval: int
    starting_step: int
    num_steps: int
    wandb_project: str = "atropos-verl"
    wandb_group: str = "default"

    @classmethod
    def for_trainer(
        cls,
        *,
        train_batch_size: int,
        group_size: int,
        max_prompt_length: int,
        max_response_length: int,
        **kwargs: Any,
    ) -> Registration:
        """Build a registration from verl's own config numbers (prompts per step, rollout.n, length caps)."""
        return cls(
            batch_size=train_batch_size * group_size,
            max_token_len=max_prompt_length + max_response_length + 1,
            **kwargs,
        )


@dataclass
class PollHealth:
    """What the client saw while waiting for batches; the trainer publishes it so the launcher's live view shows it.

    server_errors / last_server_error: 5xx answers of `/batch` with the API's own error text (atroposlib answers 500
        when a queued group cannot be serialised; every retry then loses time, so they are counted, not hidden).
    stalled: the queue holds at least a batch worth of sequences but no batch forms (groups the API cannot pack).
    """

    server_errors: int = 0
    last_server_error: str | None = None
    waiting_s: float = 0.0
    queue_size: int | None = None
    stalled: bool = False
    history: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "history"}


class AtroposClient:
    """Register, poll `/batch`, read `/status`.

    `step` is the trainer's current step; set it after each optimizer step so that a re-registration after an API
    restart resumes the API's counter at the right place.
    """

    def __init__(self, url: str, *, request_timeout: float = 60.0, transport: httpx.BaseTransport | None = None):
        self.url = url.rstrip("/")
        # httpx decompresses gzip responses transparently (large batches are sent gzip-encoded by proxies/servers).
        self._http = httpx.Client(
            base_url=self.url,
            timeout=request_timeout,
            headers={"Accept-Encoding": "gzip"},
            transport=transport,
        )
        self.registration: Registration | None = None
        self.step = 0
        self.registrations = 0
        self.health = PollHealth()
        #: Sequences per group, when the caller knows it: lets a wait be told apart from a stall.
        self.group_size: int | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AtroposClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One HTTP call; transient failures raise httpx errors, 4xx raises AtroposAPIError."""
        resp = self._http.request(method, path, **kwargs)
        if 400 <= resp.status_code < 500:
            raise AtroposAPIError(f"{method} {self.url}{path} -> {resp.status_code}: {resp.text[:500]}")
        resp.raise_for_status()
        return _decoder.decode(resp.content)

    # -- API ------------------------------------------------------------------------------------------------------
    def register(self, registration: Registration) -> int:
        """Register the trainer; returns the API's uuid for it. Remembered for re-registration after a restart."""
        self.registration = registration
        self.step = registration.starting_step
        return self._register()

    def _register(self) -> int:
        assert self.registration is not None
        body = asdict(self.registration)
        body["starting_step"] = self.step
        reply = self._request("POST", "/register", json=body)
        self.registrations += 1
        logger.info("registered with %s at step %d (batch_size=%d sequences)", self.url, self.step, body["batch_size"])
        return int(reply["uuid"])

    def status(self) -> dict[str, int]:
        """`GET /status`: the API's step counter and queue size (in groups)."""
        return self._request("GET", "/status")

    def get_batch(self) -> list[dict[str, Any]] | None:
        """One `GET /batch`: a list of ScoredData groups, or None when no full batch is queued yet.

        The API answers `{"status": "error", "batch": []}` when it has no trainer registered, which happens after it
        restarted; we register again at the current step and report "no batch yet".
        """
        reply = self._get_batch_reply()
        if reply.get("status") == "error":
            if self.registration is None:
                raise AtroposAPIError(f"{self.url} says the trainer is not registered; call register() first")
            logger.warning(
                "Atropos API at %s lost our registration (restarted?); re-registering at step %d", self.url, self.step
            )
            self._register()
            # The first /batch after /register is what releases environments waiting in /register-env.
            reply = self._get_batch_reply()
            if reply.get("status") == "error":
                raise AtroposAPIError(f"{self.url} still reports the trainer unregistered after re-registering")
        batch = reply["batch"]
        if batch is None:
            return None
        if not isinstance(batch, list):
            raise AtroposAPIError(f"GET {self.url}/batch returned a batch that is not a list: {type(batch).__name__}")
        return batch

    def _get_batch_reply(self) -> dict[str, Any]:
        reply = self._request("GET", "/batch")
        if not isinstance(reply, dict) or "batch" not in reply:
            raise AtroposAPIError(f"GET {self.url}/batch returned an unexpected body: {str(reply)[:300]}")
        return reply

    def poll_batch(
        self,
        timeout: float,
        *,
        interval: float = 0.2,
        max_interval: float = 5.0,
        check_every: float = 10.0,
        on_check: Callable[[PollHealth], None] | None = None,
        first_interval: float = 0.02,
        on_wait: Callable[[], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Poll `/batch` until a batch arrives. Connection errors and 5xx back off exponentially; 4xx raise at once.

        While no batch is ready the polls start `first_interval` apart and double up to `interval`: a batch that
        completes just after a poll is picked up within a few tens of ms, not a whole interval later (the trainer
        sits idle for that overshoot), and a long wait still costs the API only a few requests a second.

        Every `check_every` s of waiting, `/status` tells a slow environment from a stall and `on_check` gets the
        client's health. `on_wait` runs after every poll that found no batch (it may raise to end the wait). Raises
        TimeoutError naming the API, its queue and what to check when nothing arrives.
        """
        start = time.monotonic()
        deadline = start + timeout
        next_check = start + check_every
        delay = interval
        idle = min(first_interval, interval)
        last_error: Exception | None = None
        while True:
            try:
                batch = self.get_batch()
                last_error = None
                if batch is not None:
                    self.health.waiting_s, self.health.stalled = 0.0, False
                    if on_check is not None:
                        on_check(self.health)
                    return batch
                delay, idle = idle, min(idle * 2, interval)
                if on_wait is not None:
                    on_wait()
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                last_error = exc
                delay = min(max(delay * 2, interval), max_interval)
                if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code >= 500:
                    self.health.server_errors += 1
                    self.health.last_server_error = f"{exc.response.status_code}: {exc.response.text[:300]}"
                    logger.error("Atropos API %s/batch answered %s (%d so far); retrying in %.1fs", self.url,
                                 self.health.last_server_error, self.health.server_errors, delay)
                else:
                    logger.warning("Atropos API %s unavailable (%s); retrying in %.1fs", self.url, exc, delay)
            now = time.monotonic()
            if now >= next_check:
                next_check = now + check_every
                self._check_stall(now - start)
                if on_check is not None:
                    on_check(self.health)
            if now + delay > deadline:
                raise TimeoutError(self._timeout_message(timeout, last_error))
            time.sleep(delay)

    def _check_stall(self, waited: float) -> None:
        self.health.waiting_s = waited
        try:
            queue = int(self.status().get("queue_size", 0))
        except Exception:  # the API being down is reported by the poll itself
            return
        self.health.queue_size = queue
        need = self.registration.batch_size if self.registration else None
        stalled = bool(need and self.group_size and queue * self.group_size >= need)
        if stalled and not self.health.stalled:
            logger.error("stall: the Atropos API holds %d group(s) (>= %d sequences at %d per group) but no batch of "
                         "%d forms after %.0fs; groups it cannot pack (sizes that do not divide the batch) block it",
                         queue, queue * self.group_size, self.group_size, need, waited)
        self.health.stalled = stalled

    def _timeout_message(self, timeout: float, last_error: Exception | None) -> str:
        try:
            st = self.status()
            where = f"API step {st.get('current_step')}, queue holds {st.get('queue_size')} group(s)"
            if self.health.stalled:
                where += ", stalled: a batch worth of sequences is queued but none can be cut"
        except Exception as exc:  # the API itself may be what is down
            where = f"/status unreachable too ({exc})"
        cause = f"; last error: {last_error}" if last_error else ""
        need = self.registration.batch_size if self.registration else "?"
        return (
            f"no batch from the Atropos API at {self.url} within {timeout:.0f}s ({where}; a batch needs {need} "
            f"sequences{cause}). Check that the environments are running and registered (their logs, /status-env), "
            f"that they can reach the inference servers, and that their group_size/max_token_length fit the trainer."
        )
