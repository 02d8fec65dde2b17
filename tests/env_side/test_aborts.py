# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Aborted generations are retried on the chat/completion paths and SGLang's token path, against real HTTP servers
that answer like an engine caught by a weight sync."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from atroposlib.envs.server_handling.openai_server import OpenAIServer
from atroposlib.envs.server_handling.server_baseline import APIServerConfig
from atroposlib.envs.server_handling.sglang_server import SGLangServer

from atropos_verl.env_side import aborts
from atropos_verl.env_side.aborts import POLICY, AbortedGenerationError, finish_reasons, is_abort
from atropos_verl.env_side.patching import unwrap_method


class AbortingEngine(BaseHTTPRequestHandler):
    """Answers the first `aborts_left` requests with an aborted choice, then normally; counts requests."""

    aborts_left = 0
    requests = 0

    def log_message(self, *args):
        pass

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        cls.requests += 1
        aborted = cls.aborts_left > 0
        cls.aborts_left -= 1
        reason = "abort" if aborted else "stop"
        if self.path.endswith("/generate"):
            reply = {"text": "x", "meta_info": {"output_token_logprobs": [[-0.5, 7, None]],
                                                 "finish_reason": {"type": reason}}}
        elif self.path.endswith("/chat/completions"):
            reply = {"id": "c", "object": "chat.completion", "created": 0, "model": body["model"],
                     "choices": [{"index": 0, "finish_reason": reason,
                                  "message": {"role": "assistant", "content": "cut" if aborted else "full"}}]}
        else:
            reply = {"id": "c", "object": "text_completion", "created": 0, "model": body["model"],
                     "choices": [{"index": 0, "finish_reason": reason, "text": "cut" if aborted else "full"}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def engine():
    server = ThreadingHTTPServer(("127.0.0.1", 0), AbortingEngine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    AbortingEngine.requests = 0
    aborts.install()
    saved = (POLICY.backoff_s, POLICY.max_retries)
    POLICY.backoff_s = 0.01
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    POLICY.backoff_s, POLICY.max_retries = saved
    for cls in (OpenAIServer, SGLangServer):
        for name in ("_chat_completion_wrapper", "_completion_wrapper", "_tokens_and_logprobs_completion_wrapper"):
            unwrap_method(cls, name)
    server.shutdown()


def _config(url: str, server_type: str) -> APIServerConfig:
    return APIServerConfig(base_url=url, model_name="m", api_key="x", server_type=server_type, health_check=False,
                           tokenizer_name="none")


def test_chat_and_completion_retry_until_not_aborted(engine):
    server = OpenAIServer(_config(engine, "openai"))
    AbortingEngine.aborts_left = 2
    before = POLICY.retried
    chat = asyncio.run(server.chat_completion(messages=[{"role": "user", "content": "hi"}], max_tokens=4))
    assert chat.choices[0].message.content == "full" and AbortingEngine.requests == 3
    AbortingEngine.aborts_left = 1
    comp = asyncio.run(server.completion(prompt="hi", max_tokens=4))
    assert comp.choices[0].text == "full" and AbortingEngine.requests == 5
    assert POLICY.retried - before == 3


def test_sglang_token_path_retries(engine):
    server = SGLangServer.__new__(SGLangServer)
    server.config = _config(engine, "sglang")

    class Tok:
        bos_token_id = None

    server.tokenizer = Tok()
    AbortingEngine.aborts_left = 2
    result = asyncio.run(server._tokens_and_logprobs_completion_wrapper(model="m", input_ids=[1, 2], max_tokens=1))
    assert result[1] == [[7]] and AbortingEngine.requests == 3


def test_retry_budget_ends_in_a_named_error(engine):
    POLICY.max_retries = 2
    server = OpenAIServer(_config(engine, "openai"))
    AbortingEngine.aborts_left = 10
    with pytest.raises(AbortedGenerationError, match="aborted 3 times"):
        asyncio.run(server._completion_wrapper(model="m", prompt="hi", max_tokens=4))


def test_finish_reason_shapes():
    assert is_abort("abort") and is_abort({"type": "abort"}) and not is_abort("stop") and not is_abort(None)
    assert finish_reasons(([1], [[2]], [[-1.0]], ["length"])) == ["length"]
    assert finish_reasons([{"index": 0, "finish_reason": "abort"}]) == ["abort"]  # vLLM's raw JSON choices
    assert finish_reasons(object()) == []
