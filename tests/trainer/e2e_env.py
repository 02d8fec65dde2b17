# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""A small real Atropos environment for the trainer's end-to-end tests.

It generates through `self.server.completion` on the trainer's published vLLM endpoint (token-id prompt,
`return_token_ids`, per-token logprobs), so every group carries `inference_logprobs`. It also records what the tests
must check from the environment's side: every finish_reason it was served (an "abort" means a sync cut a request),
and the greedy logprobs of one fixed probe prompt over time (they change only when new weights reach the server).
With `trickle: N` it also keeps N short requests going back to back for its whole life, so that requests are always
arriving while the trainer pauses the servers for a weight push (what a push must queue, never abort).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time

from atroposlib.envs.base import APIServerConfig, BaseEnv, BaseEnvConfig, ScoredDataGroup

from atropos_verl.env_side import rollout_task

PROBE_PROMPT = "12+34="
MAX_TOKENS = 10


class ProbeEnvConfig(BaseEnvConfig):
    record_path: str = ""
    temperature: float = 1.0
    trickle: int = 0


class TrainerProbeEnv(BaseEnv):
    name = "trainer_probe"
    env_config_cls = ProbeEnvConfig

    @classmethod
    def config_init(cls) -> tuple[ProbeEnvConfig, list[APIServerConfig]]:
        env = ProbeEnvConfig(
            group_size=4,
            max_token_length=64,
            max_num_workers=4,
            use_wandb=False,
            ensure_scores_are_not_same=False,
            wandb_name=cls.name,
        )
        server = APIServerConfig(server_type="vllm", model_name="tiny", base_url="http://127.0.0.1:1/v1", api_key="x")
        return env, [server]

    async def setup(self) -> None:
        self.rng = random.Random(0)
        self._trickles = [asyncio.create_task(self._trickle()) for _ in range(self.config.trickle)]

    async def _trickle(self) -> None:
        probe_ids = self.tokenizer.encode(PROBE_PROMPT, add_special_tokens=False)
        while True:
            try:
                await self._complete(probe_ids, n=1, max_tokens=2, temperature=0.0)
            except Exception as exc:  # noqa: BLE001 - the servers may not be up yet; keep trickling
                logging.getLogger(__name__).debug("trickle request failed: %s", exc)
                await asyncio.sleep(0.5)

    async def get_next_item(self) -> tuple[int, int]:
        return self.rng.randint(10, 99), self.rng.randint(10, 99)

    def _record(self, **row) -> None:
        path = self.config.record_path
        if path:
            with open(path, "a") as fh:
                fh.write(json.dumps({"time": time.time(), "pid": os.getpid(), **row}) + "\n")

    async def _complete(self, prompt_ids: list[int], **kwargs):
        reply = await self.server.completion(
            prompt=prompt_ids, logprobs=0, extra_body={"return_token_ids": True}, **kwargs
        )
        for choice in reply.choices:
            self._record(kind="finish", reason=choice.finish_reason, step=self.curr_step)
        return reply

    async def collect_trajectories(self, item: tuple[int, int]) -> tuple[ScoredDataGroup | None, list]:
        a, b = item
        prompt_ids = self.tokenizer.encode(f"{a}+{b}=", add_special_tokens=False)
        reply = await self._complete(
            prompt_ids, n=self.config.group_size, max_tokens=MAX_TOKENS, temperature=self.config.temperature
        )
        group = ScoredDataGroup(tokens=[], masks=[], scores=[], inference_logprobs=[])
        for choice in reply.choices:
            out = list(choice.token_ids)
            text = self.tokenizer.decode(out)
            group["tokens"].append(prompt_ids + out)
            group["masks"].append([-100] * len(prompt_ids) + out)
            group["inference_logprobs"].append([1.0] * len(prompt_ids) + list(choice.logprobs.token_logprobs))
            group["scores"].append(sum(ch.isdigit() for ch in text) / max(len(text), 1))
        probe_ids = self.tokenizer.encode(PROBE_PROMPT, add_special_tokens=False)
        probe = await self._complete(probe_ids, n=1, max_tokens=4, temperature=0.0)
        # The policy version the server stamped on the probe's answer (read by the env side's transport hook).
        task = rollout_task.current()
        self._record(kind="probe", step=self.curr_step, logprobs=list(probe.choices[0].logprobs.token_logprobs),
                     ids=probe_ids + list(probe.choices[0].token_ids),
                     version=task.policy_versions[-1] if task and task.policy_versions else None)
        return group, []

    async def evaluate(self, *args, **kwargs) -> None:
        return None


if __name__ == "__main__":
    TrainerProbeEnv.cli()
