# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Let Atropos' `server_type: vllm` token path run against a stock vLLM OpenAI server, inside the env process.

atroposlib's `VLLMServer` sends `ManagedServer` traffic (`tokens_and_logprobs_completion`) and `get_logprobs` to a
custom `POST /generate` route. verl's vLLM servers serve vLLM's standard OpenAI app, which has no such route. The
subclass here sends the same requests to `POST /v1/completions` with the prompt as token ids and
`return_token_ids: true`, and returns exactly the shapes the `/generate` parser produced, so every caller
(ManagedServer, envs) is unchanged. Chat/completion calls and the `GET /health` check are inherited untouched.

Requests share one pooled HTTP session per server and event loop, sized to the server's own concurrency limits
(`num_max_requests_at_once` + `num_requests_for_eval`): a session per request paid a TCP connect and a new connector
for each call (1.3-1.5x the time of a shared session at 64-256 concurrent requests). The session is closed when the
loop shuts down (`asyncio.run` cancels the task that holds it).

vLLM aborts in-flight requests around weight syncs and answers them with HTTP 200 and `finish_reason: "abort"` and a
truncated output. Those are retried here (bounded, with backoff, by `aborts.retry_aborted`, as on every other server
path) and never handed to the env to be scored.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import aiohttp
from atroposlib.envs.server_handling.vllm_server import VLLMServer

from atropos_verl.env_side import over_context
from atropos_verl.env_side.aborts import POLICY, AbortedGenerationError, AbortPolicy, retry_aborted

__all__ = ["AbortedGenerationError", "VerlVLLMServer", "install", "is_installed"]


class VerlVLLMServer(VLLMServer):
    """`VLLMServer` whose token-level calls use vLLM's OpenAI `/v1/completions` instead of a custom `/generate`."""

    #: Retry budget and backoff of aborted replies, per server (the defaults of `aborts.AbortPolicy`).
    abort_max_retries: int = AbortPolicy.max_retries
    abort_backoff_s: float = AbortPolicy.backoff_s
    abort_backoff_max_s: float = AbortPolicy.backoff_max_s

    def __init__(self, config, reasoning_config=None):
        super().__init__(config, reasoning_config=reasoning_config)
        #: Aborted replies seen (and retried) so far; exposed for metrics and tests.
        self.aborts_retried = 0
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
            weakref.WeakKeyDictionary()
        )
        self._closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task] = weakref.WeakKeyDictionary()

    @property
    def pool_size(self) -> int:
        """Connections the session may hold: as many requests as this server's semaphores let run at once."""
        return max(1, int(self.config.num_max_requests_at_once) + int(self.config.num_requests_for_eval))

    def session(self) -> aiohttp.ClientSession:
        """This loop's pooled session, made on first use; a task of the loop closes it when the loop shuts down."""
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.pool_size))
            self._sessions[loop] = session
            self._closers[loop] = loop.create_task(_close_at_shutdown(session), name="atropos-verl-session-closer")
        return session

    @property
    def root_url(self) -> str:
        """Server root without the OpenAI `/v1` suffix."""
        base = self.config.base_url.rstrip("/")
        return base[: -len("/v1")] if base.endswith("/v1") else base

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}

    def _prompt_token_ids(self, kwargs: dict[str, Any], *, strip_double_bos: bool) -> list[int]:
        """Pop the prompt from `kwargs` as token ids: `input_ids` as given (ManagedServer), else the tokenized text."""
        if "input_ids" in kwargs:
            kwargs.pop("prompt", None)
            return list(kwargs.pop("input_ids"))
        ids = list(self.tokenizer.encode(kwargs.pop("prompt")))
        # Same guard as the base class: a chat template that inserts BOS plus the tokenizer's own BOS.
        bos = self.tokenizer.bos_token_id
        if strip_double_bos and bos is not None and len(ids) >= 2 and ids[0] == bos == ids[1]:
            ids = ids[1:]
        return ids

    @staticmethod
    def _sampling_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
        """Everything left is passed through as request fields, with the aliases Atropos callers use normalized."""
        kwargs = dict(kwargs)
        for alias in ("max_new_tokens", "max_completion_tokens"):
            if alias in kwargs:
                kwargs["max_tokens"] = kwargs.pop(alias)
        kwargs.pop("model", None)
        kwargs.pop("stream", None)
        # openai-SDK style callers put vLLM-specific fields in `extra_body`; the SDK would merge them into the body.
        extra_body = kwargs.pop("extra_body", None) or {}
        kwargs.update(extra_body)
        return kwargs

    async def _post_once(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """One POST `/v1/completions`; its choices ordered by index."""
        async with self.session().post(
            f"{self.root_url}/v1/completions",
            json=body,
            headers=self._headers(),
            timeout=aiohttp.ClientTimeout(total=self.config.timeout),
        ) as response:
            if response.status >= 400:
                text = await response.text()
                raise aiohttp.ClientResponseError(
                    response.request_info,
                    response.history,
                    status=response.status,
                    message=f"/v1/completions: {text[:500]}",
                )
            result = await response.json()
        return sorted(result["choices"], key=lambda c: c["index"])

    async def _post_completions(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """POST `/v1/completions`, resent while any choice comes back aborted (`aborts.retry_aborted`)."""
        policy = AbortPolicy(self.abort_max_retries, self.abort_backoff_s, self.abort_backoff_max_s)
        try:
            result = await retry_aborted(lambda: self._post_once(body), "vLLM /v1/completions", policy,
                                         self._count_abort)
        except Exception as exc:
            over_context.refused(exc, body)
            raise
        over_context.answered()
        return result

    def _count_abort(self) -> None:
        self.aborts_retried += 1
        POLICY.retried += 1

    async def _tokens_and_logprobs_completion_wrapper(self, **kwargs) -> tuple[list, list, list, list]:
        """(prompt_tokens, output ids per choice, output logprobs per choice, finish_reasons), as `/generate` gave."""
        assert kwargs.get("model") is not None, "Model is required for completion!"
        assert kwargs.get("prompt") is not None or kwargs.get("input_ids") is not None, (
            "Prompt or input_ids is required for completion!"
        )
        prompt_tokens = self._prompt_token_ids(kwargs, strip_double_bos=True)
        sampling = self._sampling_kwargs(kwargs)
        # `logprobs` is a top-k count on this endpoint; the sampled token's logprob is always included.
        if sampling.get("logprobs") is None or isinstance(sampling.get("logprobs"), bool):
            sampling["logprobs"] = 0
        body = {**sampling, "model": self.config.model_name, "prompt": prompt_tokens, "return_token_ids": True}
        choices = await self._post_completions(body)

        output_tokens, output_logprobs, finish_reasons = [], [], []
        for choice in choices:
            token_ids = [int(t) for t in choice["token_ids"]]
            logprobs = [float(lp) for lp in choice["logprobs"]["token_logprobs"]]
            if len(logprobs) != len(token_ids):
                raise ValueError(f"vLLM returned {len(token_ids)} token ids but {len(logprobs)} logprobs")
            output_tokens.append(token_ids)
            output_logprobs.append(logprobs)
            finish_reasons.append(choice["finish_reason"])
        return prompt_tokens, output_tokens, output_logprobs, finish_reasons

    async def _get_logprobs_wrapper(self, **kwargs) -> dict[str, Any]:
        """Prompt logprobs (top-k per position, ranked) through `prompt_logprobs` on `/v1/completions`.

        Position 0 has no logprob (nothing precedes it) and yields empty lists, as the `/generate` parser did for it.
        The prompt's own token is included at every position even when it is outside the top-k (vLLM's behaviour).
        """
        assert kwargs.get("prompt") is not None or kwargs.get("input_ids") is not None, (
            "Prompt or input_ids is required for get_logprobs!"
        )
        top_k = max(1, int(kwargs.pop("top_k", kwargs.pop("top_logprobs", 1))))
        # Only text prompts get the double-BOS guard; explicit ids are scored exactly as given (as in the base class).
        prompt_tokens = self._prompt_token_ids(kwargs, strip_double_bos="input_ids" not in kwargs)
        body = {"max_tokens": 1, **self._sampling_kwargs(kwargs)}
        body.update(
            model=self.config.model_name,
            prompt=prompt_tokens,
            prompt_logprobs=top_k,
            return_token_ids=True,
            n=1,
            temperature=0.0,
            top_p=1.0,
        )
        choices = await self._post_completions(body)
        raw = choices[0].get("prompt_logprobs")
        if raw is None:
            raise ValueError("vLLM /v1/completions response is missing 'prompt_logprobs'")
        if len(raw) != len(prompt_tokens):
            raise ValueError(f"prompt_logprobs has {len(raw)} positions for a {len(prompt_tokens)}-token prompt")

        topk_ids: list[list[int]] = []
        topk_lps: list[list[float]] = []
        for entry in raw:
            ranked = sorted((entry or {}).items(), key=lambda kv: kv[1].get("rank") or 0)
            topk_ids.append([int(tid) for tid, _ in ranked])
            topk_lps.append([float(info["logprob"]) for _, info in ranked])
        return {"prompt_tokens": prompt_tokens, "prompt_topk_token_ids": topk_ids, "prompt_topk_logprobs": topk_lps}


async def _close_at_shutdown(session: aiohttp.ClientSession) -> None:
    """Wait until cancelled (`asyncio.run` cancels what is left when its main coroutine ends), then close `session`."""
    try:
        await asyncio.Event().wait()
    finally:
        await session.close()


def install() -> None:
    """Make `ServerManager` build `VerlVLLMServer` for `server_type: vllm`.

    `ServerManager.__init__` picks the class through its module-global name `VLLMServer`, so rebinding that name is
    enough and leaves atroposlib's own class intact. Call before the env is constructed (i.e. before `cli()`).
    """
    from atroposlib.envs.server_handling import server_manager

    server_manager.VLLMServer = VerlVLLMServer


def is_installed() -> bool:
    from atroposlib.envs.server_handling import server_manager

    return server_manager.VLLMServer is VerlVLLMServer
