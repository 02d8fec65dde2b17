# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""`atropos-verl run`: bring the whole system up in the order the Atropos handshake needs, keep it healthy, stop it.

Order: the environments' import check (while the model is built or found) -> trajectory API and trainer together
(the trainer registers once verl's servers are up, polls /batch, publishes endpoints.json) -> environment processes
(they import meanwhile, then wait for their config) -> one generated YAML per environment pointing at every verl
replica. The trainer's exit ends the run; an environment that dies is restarted with backoff; SIGINT/SIGTERM or a
fatal error stops everything.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from atropos_verl import startup_times
from atropos_verl.env_side.loading import CHECKOUT_ENV
from atropos_verl.env_side.posting import STATUS_FILE_ENV
from atropos_verl.env_side.routing import AWAIT_CONFIG_ENV, SERVERS_FILE_ENV
from atropos_verl.env_side.sampling import SERVER_TEMPERATURE_ENV
from atropos_verl.env_side.start_pause import ENV_PROCESSES_ENV
from atropos_verl.env_side.token_budget import MEANING_ENV, PROMPT_CAP_ENV, RESPONSE_CAP_ENV
from atropos_verl.launch import hooks
from atropos_verl.launch.api_server import gated_api
from atropos_verl.launch.config import load_run_config
from atropos_verl.launch.env_configs import env_status_file, env_yaml_path, write_env_configs
from atropos_verl.launch.health import HealthMonitor
from atropos_verl.launch.live_view import LiveView
from atropos_verl.launch.log_lines import last_error_line
from atropos_verl.launch.model_prep import prepare_model
from atropos_verl.launch.plan import TRAINER_MODULE, RunPlan, make_plan
from atropos_verl.launch.preflight import EnvironmentCheck, env_targets
from atropos_verl.launch.run_dir import RunDirLock, check_output_dir
from atropos_verl.launch.run_temp import link_compile_cache, make_run_temp, new_logger_dirs, remove_run_files
from atropos_verl.launch.supervisor import Child, RunFailed, Supervisor
from atropos_verl.launch.trainer_restart import RESUMES_FILE, decide_resume, resume_trainer
from atropos_verl.launch.watchdog import start_watchdog, stopped
from atropos_verl.server_key import KEY_ENV, KEY_FILE, new_key, write_key
from atropos_verl.shm import ShmTracker
from atropos_verl.start_gate import GATE_ENV, open_gate
from atropos_verl.trainer.endpoints import Endpoints, read_endpoints

logger = logging.getLogger(__name__)


class Interrupted(Exception):
    pass


@dataclass
class RunResult:
    exit_code: int
    reason: str
    run_dir: Path
    leftovers: list[str] = field(default_factory=list)
    removed_shm: list[str] = field(default_factory=list)
    report_line: str | None = None
    servers: list[str] = field(default_factory=list)  # the rollout servers the trainer published (host:port)


def _child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def _wait_for_endpoints(plan: RunPlan, sup: Supervisor, view: LiveView, stop: list[int]) -> Endpoints:
    """Wait until the trainer has published its servers, failing fast if it exits first."""
    deadline = time.monotonic() + plan.config.supervision.startup_timeout
    trainer = sup.get("trainer")
    while time.monotonic() < deadline:
        if stop:
            raise Interrupted()
        if sup.check() is not None:
            raise RunFailed(f"trainer exited with code {trainer.exit_code} before publishing its endpoints; "
                            f"see {trainer.log_path}")
        if plan.endpoints_file.is_file():
            return read_endpoints(plan.endpoints_file)
        view.refresh()
        time.sleep(0.5)
    raise RunFailed(f"trainer did not publish {plan.endpoints_file} within "
                    f"{plan.config.supervision.startup_timeout:.0f}s; see {trainer.log_path}")


def forget_previous_counts(plan: RunPlan) -> None:
    """Remove a previous run's API door counts and environment status records: the trainer ends a wait on what
    they count (groups refused, or dropped before posting, with none let through), and must see this run's only."""
    Path(str(plan.verl.atropos.door_file)).unlink(missing_ok=True)
    for status in (plan.run_dir / "envs").glob("*.status.json"):
        status.unlink(missing_ok=True)


def _start_envs(plan: RunPlan, sup: Supervisor) -> None:
    """Start the environment processes before their configs exist: they import while verl's servers come up and
    wait for the config (`runner.await_config`) that `write_env_configs` writes once the servers are published."""
    for env in plan.envs:
        yaml_path = env_yaml_path(plan, env.name)
        yaml_path.unlink(missing_ok=True)  # a previous run's servers are gone
        # -P: a checkout root as working directory must not put the checkout's own `atroposlib/` source ahead of the
        # installed atroposlib (the runner adds the root to sys.path itself, after atroposlib is imported).
        argv = [sys.executable, "-P", "-m", "atropos_verl.env_side.runner", env.target, "serve", "--config",
                str(yaml_path)]
        extra = {
            STATUS_FILE_ENV: str(env_status_file(plan.run_dir, env.name)),
            SERVERS_FILE_ENV: str(yaml_path),
            SERVER_TEMPERATURE_ENV: str(float(plan.verl.actor_rollout_ref.rollout.temperature)),
            AWAIT_CONFIG_ENV: str(plan.config.supervision.startup_timeout),
            ENV_PROCESSES_ENV: str(len(plan.envs)),
            RESPONSE_CAP_ENV: str(plan.max_response_length),
            PROMPT_CAP_ENV: str(plan.max_prompt_length),
            MEANING_ENV: env.spec.token_budget,
        }
        if plan.config.atropos_checkout is not None:
            extra[CHECKOUT_ENV] = str(plan.config.atropos_checkout.resolve())
        sup.start(Child(
            name=env.name, role="env", argv=argv, log_path=plan.run_dir / "logs" / f"{env.name}.log",
            env=_child_env(extra), cwd=env.cwd,
            max_restarts=plan.config.supervision.max_restarts,
        ))


def run(config_path: str | Path, cli_overrides: list[str], *, has_accelerator: bool,
        live: bool | None = None, env_check: EnvironmentCheck | None = None,
        trainer_module: str = TRAINER_MODULE) -> RunResult:
    """`env_check`: the CLI's preflight, started before this module (verl) was imported; without one, the run checks
    the output dir and starts the environments' import check itself."""
    started = psutil.Process().create_time()  # the command's start, imports included
    config_path = Path(config_path)
    config = load_run_config(config_path)
    if env_check is None:
        check_output_dir(config.output_dir)
    lock = RunDirLock(config.run_dir).acquire()  # before anything in the run dir is touched; refuses a second run
    try:
        startup_times.start_over(config.run_dir)
        startup_times.record(config.run_dir, "launcher", "command", at=started)
        if env_check is None:
            env_check = EnvironmentCheck(env_targets(config, config_path.parent.resolve()),
                                         checkout=config.atropos_checkout)
        model_path = prepare_model(config)
        plan = make_plan(config, cli_overrides, has_accelerator=has_accelerator, trainer_module=trainer_module,
                         config_dir=config_path.parent.resolve(), model_path=model_path)
        timings = {"model_ready_s": time.time() - started}
        startup_times.record(config.run_dir, "launcher", "model_ready")
        env_check.raise_known()  # a file that does not parse fails before anything starts
    except BaseException:
        if env_check is not None:
            env_check.cancel()
        lock.release()
        raise
    for line in plan.advice:
        logger.warning(line)
    (plan.run_dir / "logs").mkdir(parents=True, exist_ok=True)
    plan.endpoints_file.unlink(missing_ok=True)  # a previous run's servers are gone
    (plan.run_dir / KEY_FILE).unlink(missing_ok=True)  # and so is their key
    forget_previous_counts(plan)
    trainer_env: dict[str, str] = {}
    if plan.needs_server_key:
        plan.server_key = new_key()
        write_key(plan.run_dir, plan.server_key)
        trainer_env[KEY_ENV] = plan.server_key
    (plan.run_dir / "launch.json").write_text(json.dumps({
        "config": str(config_path.resolve()), "api_url": plan.api_url, "backend": plan.backend,
        "trainer_argv": plan.trainer_argv, "envs": [e.name for e in plan.envs],
    }, indent=2))
    # One private temp dir (TMPDIR of every child: Ray, vLLM, torch) and a watchdog that cleans up if we are killed.
    temp_dir = make_run_temp()
    empty_dirs = new_logger_dirs(plan.run_dir, Path.cwd())
    watchdog = start_watchdog(plan.run_dir, temp_dir, empty_dirs)
    tmpdir_before = os.environ.get("TMPDIR")
    link_compile_cache(temp_dir)  # compiled kernels outlive the run: computed from the TMPDIR before ours
    os.environ["TMPDIR"] = str(temp_dir)
    gate = temp_dir / "start_gate"
    trainer_env[GATE_ENV] = str(gate)

    sup = Supervisor(restart_backoff=config.supervision.restart_backoff, stop_grace=config.supervision.stop_grace,
                     record=plan.run_dir / "processes.json")
    shm = ShmTracker().snapshot()
    health = HealthMonitor(plan)
    view = LiveView(sup, health, plan, live=live)
    stop: list[int] = []
    # SIGHUP too: a closed terminal or SSH session must stop the run cleanly, not orphan its process groups.
    previous = {
        sig: signal.signal(sig, lambda s, _f: stop.append(s)) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    result = RunResult(exit_code=1, reason="not started", run_dir=plan.run_dir)
    view.start()
    try:
        # The import check ran while the model was found or built and keeps running while the trainer imports; the
        # trainer starts Ray and verl's workers only once it has passed (`start_gate`). A bad environment stops the
        # trainer here, in seconds, with the check's error. The API starts after the check: the trainer needs it only
        # when it registers, after verl's workers and servers are up (half a minute or more), and an API importing
        # at the same time would take the cores the check and the trainer import on.
        sup.start(Child(name="trainer", role="trainer", argv=plan.trainer_argv,
                        log_path=plan.run_dir / "logs" / "trainer.log", env=_child_env(trainer_env)))
        startup_times.record(plan.run_dir, "launcher", "trainer_started")
        env_check.wait()
        startup_times.record(plan.run_dir, "launcher", "envs_checked")
        open_gate(gate)
        api_argv, api_env = gated_api(plan, model_path)
        api = sup.start(Child(
            name="api", role="api", argv=api_argv,
            log_path=plan.run_dir / "logs" / "api.log", env=_child_env(api_env),
            max_restarts=config.supervision.max_restarts,
        ))
        health.wait_api(timeout=60, alive=lambda: api.poll() is None)
        startup_times.record(plan.run_dir, "launcher", "api_ready")
        _start_envs(plan, sup)
        startup_times.record(plan.run_dir, "launcher", "envs_started")
        endpoints = _wait_for_endpoints(plan, sup, view, stop)
        health.endpoints = endpoints
        write_env_configs(plan, endpoints)
        startup_times.record(plan.run_dir, "launcher", "env_configs_written")
        view.note("running")
        api_starts = len(api.sessions)
        last_health = 0.0
        while True:
            if stop:
                raise Interrupted()
            if "first_step_s" not in timings and health.first_step_seen():
                timings["first_step_s"] = time.time() - started
                startup_times.record(plan.run_dir, "launcher", "first_step_seen")
            trainer = sup.check()
            if trainer is not None:
                ok = trainer.exit_code == 0
                decision = decide_resume(exit_code=trainer.exit_code, stopping=bool(stop), run_dir=plan.run_dir,
                                         resumes_done=trainer.restarts, limit=config.supervision.trainer_restarts,
                                         save_freq=plan.verl.trainer.get("save_freq"))
                if decision.resume:
                    view.note(f"resuming the trainer from step {decision.step}")
                    endpoints = resume_trainer(
                        plan, sup, trainer, decision.step, backoff=config.supervision.restart_backoff,
                        queued=lambda: (health.api_status() or {}).get("queue_size"),
                        stopped=lambda: bool(stop), wait_api=lambda a: health.wait_api(60, lambda: a.poll() is None),
                        wait_endpoints=lambda: _wait_for_endpoints(plan, sup, view, stop))
                    if endpoints is None:
                        raise Interrupted()
                    health.endpoints, api_starts = endpoints, len(api.sessions)
                    view.note(f"running (trainer resumed {trainer.restarts}x)")
                    continue
                why = "" if ok else last_error_line(trainer.log_path, or_last=True) + f"; {decision.why}"
                done = "trainer finished" + (f" (resumed {trainer.restarts}x from checkpoints, see "
                                             f"{plan.run_dir / RESUMES_FILE})" if trainer.restarts else "")
                result = RunResult(trainer.exit_code or 0, done if ok else
                                   f"trainer exited with code {trainer.exit_code}: {why} (see {trainer.log_path})",
                                   plan.run_dir)
                break
            if len(api.sessions) != api_starts:
                # A restarted API has forgotten the environments (the trainer re-registers by itself).
                api_starts = len(api.sessions)
                health.wait_api(timeout=60, alive=lambda: api.poll() is None)
                for child in sup.children:
                    if child.role == "env":
                        sup.restart(child)
            if time.monotonic() - last_health >= config.supervision.health_interval:
                health.check(sup)
                shm.observe(sup.member_pids())
                last_health = time.monotonic()
            view.refresh()
            time.sleep(0.5)
    except Interrupted:
        sig = signal.Signals(stop[0]).name
        result = RunResult(128 + stop[0], f"stopped by {sig}", plan.run_dir)
    except (RunFailed, TimeoutError) as exc:
        result = RunResult(1, str(exc), plan.run_dir)
    finally:
        env_check.cancel()  # still running if the API or the trainer failed first
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        view.note("stopping")
        shm.observe(sup.member_pids())
        result.servers = list(health.endpoints.addresses) if health.endpoints else []
        result.leftovers = sup.stop_all()
        result.removed_shm = shm.cleanup()
        remove_run_files(temp_dir, plan.endpoints_file, empty_dirs)  # endpoints.json: the servers it names are gone
        if tmpdir_before is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = tmpdir_before
        stopped(watchdog)
        lock.release()
        view.stop()
    timings["total_s"] = time.time() - started
    view.summary(result)
    if config.hooks.after_run is not None and result.exit_code == 0:
        outcome = hooks.RunOutcome(run_dir=plan.run_dir, model_path=model_path, exit_code=0, timings=timings)
        result.report_line = hooks.after_run(config.hooks.after_run, outcome)
        if result.report_line:
            print(result.report_line, flush=True)
    return result
