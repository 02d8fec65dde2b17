# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""verl's `RayPPOTrainer`, fed by the Atropos trajectory API instead of a dataloader and verl's agent loop.

verl owns the inference servers (its own vLLM/SGLang replicas, hybrid mode) and pushes new weights into them every
step; Atropos environments generate against those servers over HTTP and post scored groups to the API. The loop:

    restore checkpoint -> wake engines -> register at the restored step -> publish endpoints.json
    every step: poll /batch (envs generate meanwhile) -> convert + quarantine rejects -> drain + sleep engines ->
    old log-probs (or the envs' own in bypass mode) -> ref log-probs -> GRPO advantages (+ env overrides) ->
    rollout correction -> actor update ->
    checkpoint -> update_weights (wakes engines) -> resume generation

Everything model-related is verl's own code (`_compute_old_log_prob`, `_compute_ref_log_prob`, `_update_actor`,
`_save_checkpoint`/`_load_checkpoint`, `CheckpointEngineManager`); this class only decides what runs when.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf, open_dict
from verl import DataProto
from verl.trainer.ppo.core_algos import agg_loss
from verl.trainer.ppo.metric_utils import compute_data_metrics, compute_timing_metrics, reduce_metrics
from verl.trainer.ppo.ray_trainer import RayPPOTrainer, apply_kl_penalty
from verl.utils.profiler import marked_timer

from atropos_verl import startup_times
from atropos_verl.group_rules import Limits, vocab_size_of

from .advantages import compute_advantages
from .atropos_client import API_CLIENT_FILE, AtroposClient, PollHealth, Registration
from .batch import AllGroupsRejected, groups_to_dataproto
from .batch_trace import write_trace
from .deadline import call_with_timeout, sync_hint
from .door_rejections import DoorRejections, door_metrics
from .drain import RolloutDrain, install_draining_replicas, overlap_metrics, resume_and_report, served_stats
from .endpoints import Endpoints, publish_endpoints
from .env_drops import EnvDrops, waiting_summary
from .env_names import EnvNames
from .metrics import group_metrics, rejected_by_env, rejection_metrics, split_drain, temperature_metrics, time_split
from .old_log_probs import bypass_enabled, take_rollout_log_probs
from .placement import STANDALONE, placement_of, standalone_servers
from .progress import StepProgress
from .quarantine import QuarantineFile
from .reject_ceiling import RejectionCeiling
from .replica_prefetch import prefetch_replica_class
from .staleness import check_staleness, effective_max_staleness
from .step_state import AtroposStepState
from .temperature import ItemTemperatureProto, check_engine_supports
from .unused_actors import not_started
from .warm_up import start_warm_up

logger = logging.getLogger(__name__)

PADDING = "atropos_padding"


def _without_server_key(config: dict[str, Any]) -> dict[str, Any]:
    """The config as trackers may keep it: the run's server key (SGLang's `api_key` argument) masked."""
    sglang = config.get("actor_rollout_ref", {}).get("rollout", {}).get("engine_kwargs", {}).get("sglang") or {}
    if sglang.get("api_key"):
        sglang["api_key"] = "***"
    return config


class AtroposRayTrainer(RayPPOTrainer):
    """GRPO on Atropos groups with verl-owned inference servers and a drained weight sync."""

    def __init__(self, *args: Any, client: AtroposClient | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.atropos = self.config.atropos
        self.run_dir = Path(self.atropos.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._first_step: int | None = None  # this process's first step, for the start-up records
        self.bypass = bypass_enabled(self.config)
        self.client = client or AtroposClient(self.atropos.api_url)
        self.client.group_size = int(self.config.actor_rollout_ref.rollout.n)
        self.quarantine = QuarantineFile(self.atropos.quarantine_file)
        self.group_size = int(self.config.actor_rollout_ref.rollout.n)
        self.pad_token_id = (
            self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        )
        self.drain: RolloutDrain | None = None
        self.limits = Limits.from_mapping(
            self.atropos.get("limits"), vocab_size=vocab_size_of(self.config.actor_rollout_ref.model.path)
        )
        self.env_names = EnvNames(self.run_dir / "envs")
        self.rejections = RejectionCeiling(
            steps=int(self.atropos.reject_ceiling.steps), fraction=float(self.atropos.reject_ceiling.fraction),
            groups_per_step=int(self.config.data.train_batch_size),
        )
        self.door = DoorRejections(self.atropos.get("door_file"))
        self.env_drops = EnvDrops(self.run_dir / "envs")
        self.mode = str(self.atropos.get("mode", "hybrid"))
        self.placement = placement_of(self.config)
        #: The step whose update produced the actor's (and the servers') current weights: staleness is counted in
        #: updates, so a skipped step (nothing usable in its batch) does not age the groups in flight.
        self.weights_version = 0
        self.max_staleness = effective_max_staleness(self.atropos)

    # -- no dataset: the data position lives in the Atropos API -------------------------------------------------------
    def _create_dataloader(self, train_dataset, val_dataset, collate_fn, train_sampler) -> None:
        self.train_dataset = self.val_dataset = None
        self.total_training_steps = int(self.config.trainer.total_training_steps)
        self.train_dataloader = AtroposStepState(self.total_training_steps)
        self.val_dataloader = None
        # LR schedules read the run length from the optimizer config (verl sets it the same way).
        with open_dict(self.config):
            for key in ("actor_rollout_ref.actor.optim", "critic.optim"):
                if OmegaConf.select(self.config, key) is not None:
                    OmegaConf.select(self.config, key).total_training_steps = self.total_training_steps

    def _validate(self, merged: bool = False) -> dict[str, float]:
        return {}  # environments evaluate themselves (steps_per_eval)

    # -- workers --------------------------------------------------------------------------------------------------
    def init_workers(self) -> None:
        install_draining_replicas()
        prefetch_replica_class(str(self.config.actor_rollout_ref.rollout.name))
        # verl's agent loop, reward loop and load balancer are not started (environments generate); standalone
        # placement builds the servers on their own resource pools.
        with not_started(self), standalone_servers(self.placement == STANDALONE):
            super().init_workers()
        self.drain = RolloutDrain(
            self.llm_server_manager.get_replicas(),
            timeout=float(self.atropos.drain_timeout),
            on_timeout=str(self.atropos.on_drain_timeout),
            abort=self.checkpoint_manager.abort_replicas,
        )

    def _bounded(self, fn, what: str) -> Any:
        """verl's sleep/sync calls block forever when a rollout server dies; bound them by atropos.sync_timeout."""
        extension = OmegaConf.select(self.config, "actor_rollout_ref.rollout.engine_kwargs.vllm.worker_extension_cls")
        return call_with_timeout(fn, timeout_s=float(self.atropos.sync_timeout), what=what, hint=sync_hint(extension))

    def _timed_drain(self, metrics: dict[str, float], timing_raw: dict[str, float]) -> None:
        """Drain the servers under the `drain` timer, then move its wait for running requests to `drain_wait`."""
        with marked_timer("drain", timing_raw):
            metrics.update(self.drain.drain())
        split_drain(timing_raw, metrics["sync/drain_wait_seconds"])

    def _wake_and_resume(self) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
        """Push the current weights (wakes the engines), then reopen generation for queued env requests.

        Returns verl's sync metrics and, where the trainer resumed the servers itself, their `served_stats` (read in
        the same calls); None where verl's push resumed them (any checkpoint engine but `naive`).
        """
        result = self._bounded(lambda: self.checkpoint_manager.update_weights(self.global_steps), "update_weights()")
        served = None
        if self.checkpoint_manager.backend == "naive":  # verl's push through any other engine ends by resuming
            replicas = self.llm_server_manager.get_replicas()
            served = self._bounded(lambda: resume_and_report(replicas), "resume_generation_replicas()")
        return result or {}, served

    def endpoints(self) -> Endpoints:
        model = self.config.actor_rollout_ref.model
        served = self.atropos.served_model_name or self._served_model_name()
        return Endpoints(
            addresses=list(self.llm_server_manager.get_addresses()),
            backend=str(self.config.actor_rollout_ref.rollout.name),
            served_model_name=served,
            tokenizer_path=str(model.get("tokenizer_path") or model.path),
            step=self.global_steps,
        )

    def _served_model_name(self) -> str:
        """The name the servers really answer to, read from their `/v1/models`.

        verl derives it from config strings (the local model path, or `prometheus.served_model_name` cut after its
        last `/`), so any guess here could disagree with the server; asking it cannot.
        """
        from .served_model import served_model_name

        return served_model_name(list(self.llm_server_manager.get_addresses()), fallback=self._configured_model_name())

    def _configured_model_name(self) -> str:
        from verl.utils.fs import copy_to_local

        model = self.config.actor_rollout_ref.model
        return copy_to_local(model.path, use_shm=model.get("use_shm", False))

    # -- batches --------------------------------------------------------------------------------------------------
    def _convert(self, groups: list[dict[str, Any]]) -> tuple[DataProto | None, dict[str, float]]:
        """Groups -> training batch; rejected groups are quarantined and counted, never trained on."""
        # Groups of any size train (GRPO normalises per group): Atropos allows group_overrides.group_size, envs with
        # their own size and the API splitting buffered groups.
        data = None
        cfg = self.config.data
        self.env_names.refresh()
        names = self.env_names.name_of
        stale = check_staleness(groups, self.weights_version, self.max_staleness)
        rejected: list[tuple[int, str]] = list(stale.rejected)
        kept = sorted(set(range(len(groups))) - {i for i, _ in rejected})
        try:
            if not kept:
                raise AllGroupsRejected([])
            conv = groups_to_dataproto(
                [groups[i] for i in kept],
                pad_token_id=self.pad_token_id,
                max_prompt_length=int(cfg.max_prompt_length),
                max_response_length=int(cfg.max_response_length),
                limits=self.limits,
            )
            rejected += [(kept[i], reason) for i, reason in conv.rejected]
            data = conv.data
            accepted = [kept[i] for i in conv.accepted]
            sizes = [len(groups[i]["tokens"]) for i in accepted]
            versions = [-1 if stale.versions[i] is None else stale.versions[i] for i in accepted]
            data.batch["policy_version"] = torch.from_numpy(np.repeat(np.array(versions, dtype=np.int64), sizes))
        except AllGroupsRejected as exc:
            rejected += [(kept[i], reason) for i, reason in exc.rejected]
            logger.warning("no group of this batch is usable: %s", sorted(rejected))
        counts = self.quarantine.write(self.global_steps, groups, sorted(rejected), env_name=names)
        by_env = rejected_by_env(groups, rejected, names)
        door_reasons, door_envs = self.door.take()  # groups the API refused since the last step never reach a batch
        self.rejections.record(len(groups) + door_reasons.total(), counts + door_reasons, by_env + door_envs)
        metrics: dict[str, float] = stale.metrics(groups, self.max_staleness)
        metrics.update(door_metrics(door_reasons))
        if data is not None:
            data.non_tensor_batch["env_name"] = np.array([names(e) for e in data.non_tensor_batch["env_id"]], object)
            metrics.update(group_metrics(data, received=len(groups), rejected=counts))
            metrics.update(temperature_metrics(data))
            data, padded = self._pad_to_minibatches(data)
            metrics["atropos/padding_sequences"] = float(padded)
            if self.atropos.get("batch_trace"):
                write_trace(self.atropos.batch_trace, self.global_steps, data, PADDING)
        else:
            metrics.update({f"atropos/rejected/{k}": float(v) for k, v in counts.items()})
            metrics["atropos/groups_received"] = float(len(groups))
            metrics["atropos/groups_rejected"] = float(sum(counts.values()))
        metrics.update(rejection_metrics(by_env))
        return data, metrics

    def _pad_to_minibatches(self, data: DataProto) -> tuple[DataProto, int]:
        """Pad a batch that lost groups to quarantine up to whole PPO mini-batches, with rows that carry no loss.

        verl's actor splits the batch into mini-batches of exactly `ppo_mini_batch_size x rollout.n` sequences
        (`verl/utils/tensordict_utils.py` make_iterator asserts divisibility). Dropping valid groups to fit would
        waste up to a mini-batch of data; padding rows are copies with an all-zero response mask and a zero
        advantage, so they add nothing to the loss (token-mean aggregation) and are excluded from the metrics.
        """
        unit = int(self.config.actor_rollout_ref.actor.ppo_mini_batch_size) * self.group_size
        size = len(data)
        missing = -(-size // unit) * unit - size
        data.batch[PADDING] = torch.zeros(size, dtype=torch.bool)
        if not missing:
            return data, 0
        pad = data.select_idxs(torch.arange(missing) % size)
        pad.batch["response_mask"] = torch.zeros_like(pad.batch["response_mask"])
        pad.batch["token_level_scores"] = torch.zeros_like(pad.batch["token_level_scores"])
        pad.batch["zero_advantage"] = torch.ones_like(pad.batch["zero_advantage"])
        pad.batch["has_env_advantages"] = torch.zeros_like(pad.batch["has_env_advantages"])
        pad.batch[PADDING] = torch.ones(missing, dtype=torch.bool)
        pad.non_tensor_batch["uid"] = np.array([f"padding-{i}" for i in range(missing)], dtype=object)
        pad.non_tensor_batch["env_id"] = np.array(["padding"] * missing, dtype=object)
        if "env_name" in data.non_tensor_batch:
            pad.non_tensor_batch["env_name"] = np.array(["padding"] * missing, dtype=object)
        return DataProto.concat([data, pad]), missing

    def _train_on(self, batch: DataProto, metrics: dict[str, float], timing_raw: dict[str, float]) -> None:
        """verl's PPO dataflow on one Atropos batch (engines are asleep while this runs)."""
        cfg = self.config
        check_engine_supports(batch, use_fused_kernels=bool(cfg.actor_rollout_ref.model.get("use_fused_kernels")))
        if cfg.trainer.balance_batch:
            with marked_timer("balance_batch", timing_raw):
                self._balance_batch(batch, metrics=metrics)
        batch.meta_info["global_token_num"] = torch.sum(batch.batch["attention_mask"], dim=-1).tolist()
        batch.meta_info["images_seqlens"] = []

        with marked_timer("old_log_prob", timing_raw, color="blue"):
            bypassed = self.bypass and take_rollout_log_probs(batch)
            if self.bypass:
                metrics["atropos/old_log_probs_recomputed"] = float(not bypassed)
            if not bypassed:
                batch = self._recompute_old_log_probs(batch, metrics)

        if self.use_reference_policy:
            with marked_timer("ref", timing_raw, color="olive"):
                batch = batch.union(self._compute_ref_log_prob(batch))

        with marked_timer("adv", timing_raw, color="brown"):
            if cfg.algorithm.use_kl_in_reward:
                batch, kl_metrics = apply_kl_penalty(
                    batch, kl_ctrl=self.kl_ctrl_in_reward, kl_penalty=cfg.algorithm.kl_penalty
                )
                metrics.update(kl_metrics)
            else:
                batch.batch["token_level_rewards"] = batch.batch["token_level_scores"]
            corr_cfg = cfg.algorithm.get("rollout_correction")
            if (
                self.atropos.rollout_correction
                and corr_cfg is not None
                and not self.bypass
                and "rollout_log_probs" in batch.batch.keys()
            ):
                from verl.trainer.ppo.rollout_corr_helper import compute_rollout_correction_and_add_to_batch

                batch, corr_metrics = compute_rollout_correction_and_add_to_batch(batch, corr_cfg)
                metrics.update(corr_metrics)
            batch = compute_advantages(
                batch,
                norm_adv_by_std_in_grpo=bool(cfg.algorithm.get("norm_adv_by_std_in_grpo", True)),
                adv_estimator=str(cfg.algorithm.adv_estimator),
                config=cfg.algorithm,
            )

        with marked_timer("update_actor", timing_raw, color="red"):
            actor_output = self._update_actor(batch)
        with marked_timer("data_metrics", timing_raw):
            metrics.update(reduce_metrics(actor_output.meta_info["metrics"]))
            real = batch.select_idxs(torch.nonzero(~batch.batch[PADDING]).squeeze(-1))
            metrics.update(compute_data_metrics(batch=real, use_critic=False))
            metrics.update(compute_timing_metrics(batch=real, timing_raw=timing_raw))

    def _recompute_old_log_probs(self, batch: DataProto, metrics: dict[str, float]) -> DataProto:
        """verl's old-log-prob pass (the proximal anchor of decoupled mode), with its entropy and debug metrics."""
        actor_cfg = self.config.actor_rollout_ref.actor
        old_log_prob, mfu = self._compute_old_log_prob(batch)
        entropy = agg_loss(
            loss_mat=old_log_prob.batch["entropys"],
            loss_mask=batch.batch["response_mask"],
            loss_agg_mode=actor_cfg.loss_agg_mode,
            loss_scale_factor=actor_cfg.get("loss_scale_factor"),
        )
        metrics.update({"actor/entropy": entropy.detach().item(), "perf/mfu/actor_infer": mfu})
        old_log_prob.batch.pop("entropys")
        batch = batch.union(old_log_prob)
        if "rollout_log_probs" in batch.batch.keys():
            from verl.utils.debug.metrics import calculate_debug_metrics

            metrics.update(calculate_debug_metrics(batch))
        return batch

    # -- the loop -------------------------------------------------------------------------------------------------
    def _register(self) -> None:
        cfg = self.config
        start = self.global_steps
        self.client.register(
            Registration.for_trainer(
                train_batch_size=int(cfg.data.train_batch_size),
                group_size=self.group_size,
                max_prompt_length=int(cfg.data.max_prompt_length),
                max_response_length=int(cfg.data.max_response_length),
                checkpoint_dir=str(Path(cfg.trainer.default_local_dir).absolute()),
                save_checkpoint_interval=int(cfg.trainer.save_freq),
                starting_step=start,
                num_steps=self.total_training_steps,
                wandb_project=str(self.atropos.wandb_project),
                wandb_group=str(self.atropos.wandb_group),
            )
        )
        reg = self.client.registration
        print(f"registered with the Atropos API at {self.client.url} at step {start} "
              f"(batch_size={reg.batch_size} sequences, max_token_len={reg.max_token_len})", flush=True)
        api_step = int(self.client.status().get("current_step", start))
        if api_step != start:
            logger.warning(
                "the Atropos API kept its state from an earlier run: its step is %d, the trainer resumes at %d "
                "(registrations are kept per API process; GET %s/reset_data before restarting to realign)",
                api_step,
                start,
                self.client.url,
            )
        self.train_dataloader.api_step = api_step

    def _tracker(self):
        import os

        from verl.utils.tracking import FileLogger, Tracking

        # verl's own file logger opens with "wb": a trainer started again on this run dir would wipe the steps
        # already written. Ours appends; readers (health, demo report) take the newest line per step.
        backends = [b for b in self.config.trainer.logger if b != "file"]
        start = self.global_steps
        name = "metrics.jsonl" if start == 0 else f"metrics.resumed-{start}.jsonl"
        os.environ["VERL_FILE_LOGGER_PATH"] = str(self.run_dir / name)
        tracking = Tracking(
            project_name=self.config.trainer.project_name,
            experiment_name=self.config.trainer.experiment_name,
            default_backend=backends,
            config=_without_server_key(OmegaConf.to_container(self.config, resolve=True)),
        )
        logger = FileLogger.__new__(FileLogger)
        logger.project_name = self.config.trainer.project_name
        logger.experiment_name = self.config.trainer.experiment_name
        logger.filepath = os.environ["VERL_FILE_LOGGER_PATH"]
        logger.fp = open(logger.filepath, "ab", buffering=0)  # noqa: SIM115 - closed by Tracking.finish
        tracking.logger["file"] = logger
        return tracking

    def _api_step(self) -> int:
        """The API's own step counter; it runs ahead when envs queued several batches at the moment of a poll."""
        try:
            api_step = int(self.client.status()["current_step"])
        except Exception as exc:  # the batch is in hand; a status hiccup must not stop training
            logger.warning(
                "GET %s/status failed (%s); assuming the API is at step %d", self.client.url, exc, self.global_steps
            )
            return self.global_steps
        if api_step != self.global_steps:
            logger.warning("Atropos API step %d != trainer step %d", api_step, self.global_steps)
        return api_step

    def fit(self) -> None:
        self.global_steps = 0
        self._load_checkpoint()
        tracker = self._tracker()
        self._wake_and_resume()
        self.weights_version = self.global_steps
        startup_times.record(self.run_dir, "trainer", "servers_ready")
        self._register()
        endpoints = self.endpoints()
        publish_endpoints(self.atropos.endpoints_file, endpoints)
        logger.info("rollout servers published to %s", self.atropos.endpoints_file)
        startup_times.record(self.run_dir, "trainer", "endpoints_published")
        # In the background: atroposlib's API registers environments only once the trainer polls /batch, and they
        # then wait 5 s before generating, which the servers' first-request compile can use.
        start_warm_up(endpoints.addresses, endpoints.served_model_name, self.run_dir)

        progress = StepProgress(self.total_training_steps, start=self.global_steps)
        self._first_step = self.global_steps + 1
        try:
            while self.global_steps < self.total_training_steps:
                self.global_steps += 1
                metrics = self._step()
                if self.global_steps == self._first_step:
                    startup_times.record(self.run_dir, "trainer", "first_step")
                tracker.log(data=metrics, step=self.global_steps)
                progress.update(self.global_steps, metrics)
                self.rejections.check()  # raises NothingToLearnError after too many steps of rejected groups
        finally:
            progress.close()
            print(self.rejections.summary(), flush=True)

    def _publish_poll_health(self, health: PollHealth) -> None:
        """`<run dir>/api_client.json`: 5xx answers and stalls while waiting, for the launcher's live view."""
        path = self.run_dir / API_CLIENT_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"step": self.global_steps, "time": time.time(), **health.to_json()}))
        tmp.replace(path)

    def _check_waiting(self) -> None:
        """While no batch comes: end the run when no batch can come (groups refused at the API's door in a row, or
        dropped by the environments' atroposlib as too long with none posted)."""
        self.rejections.check_door(self.door.poll())
        dropped, posted = self.env_drops.since_mark()
        data = self.config.data
        self.rejections.check_env_drops(dropped, posted, max_prompt=int(data.max_prompt_length),
                                        max_response=int(data.max_response_length))

    def _step(self) -> dict[str, float]:
        metrics: dict[str, float] = {"training/global_step": float(self.global_steps)}
        timing_raw: dict[str, float] = {}
        with marked_timer("step", timing_raw):
            with marked_timer("wait_batch", timing_raw):
                try:
                    groups = self.client.poll_batch(float(self.atropos.poll_timeout),
                                                    on_check=self._publish_poll_health, on_wait=self._check_waiting)
                except TimeoutError as exc:
                    raise TimeoutError(f"{exc} Environments: {waiting_summary(self.run_dir / 'envs')}.") from None
            self.env_drops.mark()  # the drops that count are those after this batch
            if self.global_steps == self._first_step:
                startup_times.record(self.run_dir, "trainer", "first_batch")
            metrics["atropos/api_server_errors"] = float(self.client.health.server_errors)
            self.client.step = self.global_steps
            with marked_timer("api_status", timing_raw):
                api_step = self._api_step()
            self.train_dataloader.api_step = api_step
            metrics["atropos/api_step"] = float(api_step)
            with marked_timer("convert", timing_raw):
                batch, conv_metrics = self._convert(groups)
            metrics.update(conv_metrics)
            served: list[dict[str, Any]] | None = None  # the servers' counters, once they are resumed after a push
            if batch is None:
                # Nothing to learn from; keep the step so the trainer and the API count the same batches.
                metrics["atropos/skipped_step"] = 1.0
            else:
                batch = ItemTemperatureProto.wrap(batch)
                if self.mode == "hybrid":
                    # The servers pause for the update: requests already running finish, new ones wait.
                    self._timed_drain(metrics, timing_raw)
                    if self.config.actor_rollout_ref.rollout.free_cache_engine:
                        # Without free_cache_engine the servers' sleep() frees nothing and returns at once (the CPU
                        # platform's default): skipping it saves the round trips and changes nothing.
                        with marked_timer("sleep_replicas", timing_raw):
                            self._bounded(self.checkpoint_manager.sleep_replicas, "sleep_replicas()")
                if self.mode == "async":  # in hybrid mode the servers are paused through the update
                    with marked_timer("served_stats", timing_raw):
                        served_before = served_stats(self.llm_server_manager.get_replicas())
                self._train_on(batch, metrics, timing_raw)
                if self.config.trainer.save_freq > 0 and (
                    self.global_steps % self.config.trainer.save_freq == 0
                    or self.global_steps >= self.total_training_steps
                ):
                    with marked_timer("save_checkpoint", timing_raw, color="green"):
                        self._save_checkpoint()
                if self.mode == "async":
                    # The servers generated on the old weights during the update; requests running now finish on
                    # them, new ones wait through the push and run on the new weights.
                    self._timed_drain(metrics, timing_raw)
                    metrics.update(overlap_metrics(served_before, self.drain.last_served))
                with marked_timer("update_weights", timing_raw, color="red"):
                    sync, served = self._wake_and_resume()
                self.weights_version = self.global_steps
                metrics.update({f"sync/{k}": v for k, v in sync.items() if isinstance(v, int | float)})
            if served is None:
                with marked_timer("served_stats", timing_raw):
                    served = served_stats(self.llm_server_manager.get_replicas())
        versions = [v["version"] for v in served if v["version"] is not None]
        if versions:
            metrics["atropos/served_policy_version"] = float(min(versions))
        if served:
            metrics["atropos/served_aborted_total"] = float(sum(v.get("aborted", 0) for v in served))
        metrics.update({f"timing_s/{k}": v for k, v in timing_raw.items() if k not in metrics})
        metrics.update(time_split(timing_raw))
        metrics["atropos/wall_time"] = time.time()
        return metrics

    def rejected_counts(self) -> Counter[str]:
        """Reasons of every quarantined group so far (for reports and tests)."""
        return Counter(record["reason"] for record in self.quarantine.read())
