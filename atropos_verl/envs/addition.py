# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Two-digit addition (`23+45=` → `68`) as a real Atropos environment with local data.

It is the CPU demo's task: small enough that a 0.57M-parameter model learns it from an exact-match reward in minutes,
and it exercises the same path real environments use (chat template, `ManagedServer` token-level generation, groups
posted to the trajectory API). The 8,100 pairs are split once by a seeded shuffle; the held-out pairs are only ever
used by `evaluate()`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from pathlib import Path
from typing import Any

from atroposlib.envs.base import APIServerConfig, BaseEnv, BaseEnvConfig, ScoredDataGroup
from pydantic import Field

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = "You are a helpful assistant. Answer with the number only."
END_OF_TURN = "<|im_end|>"
OPERAND_RANGE = range(10, 100)

Pair = tuple[int, int]


class AdditionEnvConfig(BaseEnvConfig):
    """Task, split and evaluation settings on top of Atropos' `BaseEnvConfig` (defaults suit the tiny CPU model)."""

    data_seed: int = Field(default=0, description="Seed of the shuffle that splits the pairs into train/held-out")
    num_heldout: int = Field(default=1000, ge=1, lt=len(OPERAND_RANGE) ** 2, description="Pairs never trained on")
    order_seed: int | None = Field(
        default=None, description="Seed of the training-pair order (None: data_seed + 1); vary it for seed-noise runs"
    )
    eval_size: int = Field(default=200, ge=1, description="Held-out pairs scored by evaluate() (the first N)")
    max_new_tokens: int = Field(default=5, ge=1, description="Generation budget; the answer and <|im_end|> fit in 4")
    temperature: float = Field(default=1.0, ge=0.0, description="Sampling temperature of training rollouts")
    eval_metrics_path: str | None = Field(
        default=None, description="If set, every evaluate() appends one JSON line with its metrics to this file"
    )


def make_split(seed: int = 0, num_heldout: int = 1000) -> tuple[list[Pair], list[Pair]]:
    """(train, held_out): every (a, b) with a, b in [10, 99], shuffled by `seed`; the first `num_heldout` held out."""
    pairs = [(a, b) for a in OPERAND_RANGE for b in OPERAND_RANGE]
    random.Random(seed).shuffle(pairs)
    return pairs[num_heldout:], pairs[:num_heldout]


def build_messages(a: int, b: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": f"{a}+{b}="}]


def score_completion(completion_text: str, answer: int) -> float:
    """1.0 iff the completion (decoded with special tokens) ends its turn and the text before that is the answer.

    A completion cut off by the token budget never scores, even if its digits are right: the model must learn to stop.
    """
    if END_OF_TURN not in completion_text:
        return 0.0
    return 1.0 if completion_text.split(END_OF_TURN, 1)[0] == str(answer) else 0.0


class AdditionEnv(BaseEnv):
    """Samples `group_size` answers per training pair through `ManagedServer` and rewards exact matches."""

    name = "addition"
    env_config_cls = AdditionEnvConfig

    def __init__(self, config: AdditionEnvConfig, server_configs, slurm: bool = False, testing: bool = False):
        super().__init__(config, server_configs, slurm=slurm, testing=testing)
        self.config: AdditionEnvConfig = config
        self.train: list[Pair] = []
        self.held_out: list[Pair] = []
        self.order = random.Random()
        self.cursor = 0
        self.train_rewards: list[float] = []
        self.eval_metrics: list[tuple[str, float]] = []

    @classmethod
    def config_init(cls) -> tuple[AdditionEnvConfig, list[APIServerConfig]]:
        env_config = AdditionEnvConfig(
            group_size=8,
            max_token_length=64,
            max_num_workers=16,
            steps_per_eval=100,
            use_wandb=False,
            wandb_name=cls.name,
        )
        server = APIServerConfig(
            server_type="vllm",
            model_name="tiny",
            base_url="http://127.0.0.1:8100/v1",
            api_key="x",
            timeout=600,
            num_requests_for_eval=64,
        )
        return env_config, [server]

    async def setup(self) -> None:
        self.train, self.held_out = make_split(self.config.data_seed, self.config.num_heldout)
        seed = self.config.data_seed + 1 if self.config.order_seed is None else self.config.order_seed
        self.order = random.Random(seed)
        self.order.shuffle(self.train)
        self.cursor = 0
        logger.info("addition: %d train pairs, %d held out", len(self.train), len(self.held_out))

    async def get_next_item(self) -> Pair:
        """Train pairs in a seeded order, reshuffled at the end of every pass."""
        if self.cursor >= len(self.train):
            self.order.shuffle(self.train)
            self.cursor = 0
        item = self.train[self.cursor]
        self.cursor += 1
        return item

    async def collect_trajectories(self, item: Pair) -> tuple[ScoredDataGroup | None, list[Pair]]:
        a, b = item
        async with self.server.managed_server(tokenizer=self.tokenizer) as managed:
            await managed.chat_completion(
                messages=build_messages(a, b),
                n=self.config.group_size,
                max_tokens=self.config.max_new_tokens,
                temperature=self.config.temperature,
            )
            nodes = managed.get_state()["nodes"]
        group = self.score_nodes(nodes, a + b)
        self.train_rewards.extend(group["scores"])
        return group, []

    def score_nodes(self, nodes: list[Any], answer: int) -> ScoredDataGroup:
        """A group from ManagedServer nodes: tokens, masks (-100 on the prompt), scores and the sampler's logprobs."""
        group = ScoredDataGroup(tokens=[], masks=[], scores=[], inference_logprobs=[])
        for node in nodes:
            completion_ids = [t for t, m in zip(node.tokens, node.masked_tokens, strict=True) if m != -100]
            text = self.tokenizer.decode(completion_ids, skip_special_tokens=False)
            group["tokens"].append(list(node.tokens))
            group["masks"].append(list(node.masked_tokens))
            group["scores"].append(score_completion(text, answer))
            group["inference_logprobs"].append(list(node.logprobs))
        return group

    async def answer_greedy(self, a: int, b: int) -> float:
        """Exact match of the greedy answer, through the eval semaphore so training traffic is not starved."""
        async with self.server.managed_server(tokenizer=self.tokenizer) as managed:
            await managed.chat_completion(
                messages=build_messages(a, b),
                n=1,
                max_tokens=self.config.max_new_tokens,
                temperature=0.0,
                split="eval",
            )
            node = managed.get_state()["nodes"][0]
        completion_ids = [t for t, m in zip(node.tokens, node.masked_tokens, strict=True) if m != -100]
        return score_completion(self.tokenizer.decode(completion_ids, skip_special_tokens=False), a + b)

    async def evaluate(self, *args, **kwargs) -> dict[str, float]:
        """Greedy exact-match accuracy on the first `eval_size` held-out pairs."""
        start = time.time()
        pairs = self.held_out[: self.config.eval_size]
        limit = asyncio.Semaphore(max(1, self.config.max_eval_workers))

        async def one(pair: Pair) -> float:
            async with limit:
                return await self.answer_greedy(*pair)

        scores = await asyncio.gather(*(one(p) for p in pairs))
        metrics = {"eval/accuracy": sum(scores) / len(scores), "eval/num_items": float(len(scores))}
        self.eval_metrics.extend(metrics.items())
        logger.info("addition eval at step %d: accuracy %.4f on %d held-out pairs", self.curr_step, *metrics.values())
        if self.config.eval_metrics_path:
            path = Path(self.config.eval_metrics_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            record = {"step": self.curr_step, "time": time.time(), "duration_s": time.time() - start, **metrics}
            with path.open("a") as f:
                f.write(json.dumps(record) + "\n")
        if self.config.data_dir_to_save_evals:
            await self.evaluate_log(metrics, start_time=start, end_time=time.time(), verbose=False)
        return metrics

    async def wandb_log(self, wandb_metrics: dict | None = None) -> None:
        wandb_metrics = dict(wandb_metrics or {})
        if self.train_rewards:
            wandb_metrics["train/percent_correct"] = sum(self.train_rewards) / len(self.train_rewards)
            self.train_rewards = []
        wandb_metrics.update(self.eval_metrics)
        self.eval_metrics = []
        await super().wandb_log(wandb_metrics)
