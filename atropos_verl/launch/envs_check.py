# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""`atropos-verl envs check ENV`: does this environment train with verl? One environment, unmodified, against the
stack a run uses, in minutes, each stage with a verdict and the first failure's cause and fix.

Two parts. First the environment is imported in a fresh interpreter, as the env runner imports it: which class is
chosen (and which are skipped, and why), and which inference clients it builds itself (judges), which no routing
reaches. A failure there ends the check in seconds. Then a real run: the trajectory API behind the door, verl's
servers (the CPU platform without a GPU), the environment process and the trainer, with the tiny model unless a model
is given, for one training step on `groups` groups. What each stage did is read from what the run leaves: the
environment's status record (registration, servers, items started, items that gave no group and why, groups posted,
token budget), the door's counts, the trainer's first step (groups accepted, conversion refusals, temperatures,
policy versions, trained tokens) and the run's end line. Nothing is left running (the launcher's own stop).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from atropos_verl.api_side.door_stats import read_door_stats
from atropos_verl.env_side.loading import CHECKOUT_ENV
from atropos_verl.env_side.posting import POSTED_FILE_ENV
from atropos_verl.launch.smoke import TINY as SMOKE_TINY
from atropos_verl.launch.smoke import small_step_overrides
from atropos_verl.trainer.env_names import status_records

#: Constructors of inference clients an environment may build itself, outside atroposlib's server manager.
OWN_CLIENT = re.compile(r"\b(?:Async)?(?:OpenAI|Anthropic|AzureOpenAI)\s*\(|\bopenai\.(?:Async)?Client\s*\(")
POSTED_FILE = "posted.jsonl"
TINY = {**SMOKE_TINY, "max_position_embeddings": 4096}

_IMPORT_SCRIPT = r"""
import inspect, json, os, sys
from pathlib import Path
spec = sys.argv[1]
out = {"error": None, "chosen": None, "skipped": [], "evaluation_off": False}
try:
    from atropos_verl.env_side import compat
    compat.install()
    from atroposlib.envs.base import BaseEnv
    from atropos_verl.env_side.runner import resolve_env
    target = spec.partition(":")[0]
    if target.endswith(".py"):
        from atropos_verl.env_side.loading import load_file
        module = load_file(Path(target), os.environ.get("ATROPOS_VERL_CHECKOUT"))
        for obj in vars(module).values():
            if inspect.isclass(obj) and issubclass(obj, BaseEnv) and obj.__module__ == module.__name__:
                missing = sorted(getattr(obj, "__abstractmethods__", ()))
                if missing:
                    out["skipped"].append({"name": obj.__name__, "why": "does not implement " + ", ".join(missing)})
    chosen = resolve_env(spec)
    out["chosen"] = f"{chosen.__module__}:{chosen.__qualname__}"
    out["skipped"] = [s for s in out["skipped"] if s["name"] != chosen.__name__]  # evaluation off: used, not skipped
    out["evaluation_off"] = bool(getattr(chosen, "_atropos_verl_evaluation_off", False))
except BaseException as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"
print("ENVCHECK " + json.dumps(out), flush=True)
"""


@dataclass
class Stage:
    name: str
    ok: bool | None  # None: not reached
    detail: str


@dataclass
class CheckResult:
    target: str
    verdict: str = "fail"
    cause: str | None = None
    fix: str | None = None
    stages: list[Stage] = field(default_factory=list)
    seconds: float = 0.0
    run_dir: str | None = None

    def add(self, name: str, ok: bool | None, detail: str) -> bool | None:
        self.stages.append(Stage(name, ok, detail))
        return ok

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def resolve_target(env: str, checkout: Path | None) -> str:
    """A builtin name or module path as given; a `.py` file found under the checkout or as a path."""
    if not env.partition(":")[0].endswith(".py"):
        return env
    path, _, cls = env.partition(":")
    for root in [r for r in (checkout, Path.cwd()) if r is not None]:
        if (root / path).is_file():
            return str((root / path).resolve()) + (f":{cls}" if cls else "")
    raise FileNotFoundError(f"environment file {path} not found" + (f" under {checkout}" if checkout else ""))


def own_clients(target: str) -> list[str]:
    """Inference clients the environment's file builds itself (judges, graders): no routing reaches them."""
    path = Path(target.partition(":")[0])
    if path.suffix != ".py" or not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [f"{path.name}:{n} {line.strip()[:100]}" for n, line in enumerate(lines, 1) if OWN_CLIENT.search(line)]


def import_stage(target: str, checkout: Path | None, timeout: float = 180.0) -> dict[str, Any]:
    env = dict(os.environ)
    if checkout is not None:
        env[CHECKOUT_ENV] = str(checkout.resolve())
    cwd = checkout.resolve() if checkout is not None else None
    try:
        done = subprocess.run([sys.executable, "-P", "-c", _IMPORT_SCRIPT, target], capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=cwd)
    except subprocess.TimeoutExpired:
        return {"error": f"TimeoutError: importing it took over {timeout:.0f}s"}
    for line in done.stdout.splitlines():
        if line.startswith("ENVCHECK "):
            return json.loads(line[len("ENVCHECK "):])
    tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
    return {"error": f"the import check died (exit {done.returncode}): {tail}"}


def import_fix(error: str) -> str:
    if error.startswith("ModuleNotFoundError"):
        name = re.search(r"No module named '([^']+)'", error)
        return f"install the package it imports ({name.group(1).split('.')[0] if name else 'see the error'})"
    if "cannot be built: it does not implement" in error:
        return "implement the methods named (atroposlib's BaseEnv declares them abstract)"
    if error.startswith("FileNotFoundError"):
        return "give the file relative to --checkout, or its path"
    if "expected one BaseEnv subclass" in error:
        return "name the class: ENV.py:ClassName"
    return "see the error: the environment fails before it is built"


def run_config(target: str, workdir: Path, *, checkout: Path | None, groups: int, model: str | None,
               timeout: float, token_budget: str) -> dict[str, Any]:
    """A run of one training step on `groups` groups of this environment, with everything small."""
    name = "check"
    config: dict[str, Any] = {
        "run_name": name,
        "output_dir": str(workdir),
        "environments": [{"env": target, "name": "env", "max_batches_offpolicy": 1, "token_budget": token_budget,
                          # An untrained model scores a group's completions alike; keep such groups (the plumbing is
                          # under test, not the learning signal). With a model of the user's, the environment decides.
                          "settings": {} if model else {"ensure_scores_are_not_same": False}}],
        "supervision": {"health_interval": 2, "max_restarts": 0, "restart_backoff": 1, "stop_grace": 6,
                        "trainer_restarts": 0, "startup_timeout": timeout},
        "verl": [
            # Atropos environments' system prompts run to thousands of characters (about a token per 1.5 characters
            # with the tiny tokenizer): the tiny model serves 4096 positions.
            *small_step_overrides(groups, 1, max_prompt=3840, max_response=128),
            "trainer.n_gpus_per_node=1",
            "trainer.nnodes=1",
            f"atropos.poll_timeout={timeout}",
            f"atropos.batch_trace={workdir / name / 'batch_trace.jsonl'}",
        ],
    }
    if checkout is not None:
        config["atropos_checkout"] = str(checkout.resolve())
    if model:
        config["model_path"] = model
    else:
        config["build_model"] = {"kind": "tiny", "seed": 0, "size": TINY}
    return config


def runtime_stages(result: CheckResult, run_dir: Path, exit_code: int, reason: str, clients: list[str]) -> None:
    """The stages after the import, read from the run dir (see the module docstring)."""
    from atropos_verl.launch.smoke import read_steps
    from atropos_verl.trainer.env_drops import without_group_phrase

    status = status_records(run_dir / "envs").get("env", {})
    door = read_door_stats(run_dir / "api_door.json") or {}
    steps = read_steps(run_dir)
    servers = status.get("servers") or []
    routing = f"{len(servers)} server(s) routed to verl's: {', '.join(servers) or 'none'}"
    if clients:
        routing += f"; built by the environment itself, not routed: {'; '.join(clients)}"
    result.add("routing", bool(servers) if status else None, routing)
    result.add("registration", status.get("env_id") is not None if status else None,
               f"env_id {status.get('env_id')}" if status else "no status record: the process never started")
    started = int(status.get("items_started") or 0)
    budget = status.get("token_budget") or {}
    result.add("items started", started > 0 if status else None,
               f"{started} items; token budget {budget.get('max_token_length')} "
               f"({budget.get('meaning')}, max_tokens <= {budget.get('max_tokens_cap')})")
    nothing = without_group_phrase(status) or "every item gave a group"
    posted = int(status.get("groups_posted") or 0)
    result.add("items scored to nothing", None if not started else posted > 0 or not status.get("items_without_group"),
               nothing)
    result.add("groups posted", posted > 0, f"{posted} groups, {status.get('sequences_posted', 0)} sequences; "
               f"last error: {status.get('last_error')}")
    by_reason = door.get("by_reason") or {}
    result.add("gate", (door.get("accepted") or 0) > 0 if door else None,
               f"{door.get('accepted', 0)} let through, {door.get('rejected', 0)} refused"
               + (": " + ", ".join(f"{r} x{n}" for r, n in by_reason.items()) if by_reason else ""))
    first = steps[0] if steps else {}
    refusals = {k.split("/", 2)[-1]: v for k, v in first.items() if k.startswith("atropos/rejected/")}
    conversion = (f"{first.get('atropos/groups_accepted', 0):.0f} of {first.get('atropos/groups_received', 0):.0f} "
                  f"groups converted; temperatures {first.get('atropos/temperature_min')}..."
                  f"{first.get('atropos/temperature_max')}; policy lag {first.get('atropos/lag/max')}"
                  + (f"; refused: {refusals}" if refusals else "")) if first else "no batch reached the trainer"
    result.add("conversion", bool(first) and first.get("atropos/groups_accepted", 0) > 0 if first else None,
               conversion)
    if first:
        same, compared = masks_as_built(run_dir / "batch_trace.jsonl", run_dir / POSTED_FILE)
        trace = run_dir / "batch_trace.jsonl"
        with_logprobs = trace.is_file() and '"env_logprobs": true' in trace.read_text()
        result.add("masks", same == compared and compared > 0,
                   f"{same} of {compared} trained sequences train exactly the positions the environment left "
                   f"unmasked; the environment's inference log-probs {'used' if with_logprobs else 'absent'}")
    result.add("training step", bool(steps) and exit_code == 0,
               f"{len(steps)} step trained" if steps and exit_code == 0 else reason)


def masks_as_built(trace: Path, posted: Path) -> tuple[int, int]:
    """Trained sequences (the trainer's batch trace) whose trained positions are exactly those the environment's
    mask left unmasked (what it posted), and how many were compared."""
    def lines(path: Path) -> list[dict[str, Any]]:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []

    built = {tuple(p["tokens"]): p["masks"] for p in lines(posted)}
    same = compared = 0
    for seq in lines(trace):
        tokens = tuple(seq["prompt"] + seq["response"])
        if tokens not in built:
            continue
        compared += 1
        mask = built[tokens][len(seq["prompt"]):]
        same += [int(m != -100) for m in mask] == [int(m) for m in seq["response_mask"]]
    return same, compared


def verdict(result: CheckResult, reason: str) -> None:
    """Pass when a training step ran; else the first stage that failed, its cause and fix."""
    failed = next((s for s in result.stages if s.ok is False), None)
    if failed is None and all(s.ok is not False for s in result.stages) and result.stages[-1].ok:
        result.verdict, result.cause, result.fix = "pass", None, None
        return
    result.verdict = "fail"
    stage = failed or result.stages[-1]
    if reason.startswith("env exited with code"):
        # The environment process died: its error is the cause, and the stages after its death only echo it.
        result.cause = f"the environment process died: {reason.split(': ', 1)[-1]}"
        result.fix = stage_fix(Stage(stage.name, stage.ok, result.cause), reason)
        return
    result.cause = f"{stage.name}: {stage.detail}" if failed else f"{stage.name}: {reason}"
    gate = next((s for s in result.stages if s.name == "gate"), None)
    if gate is not None and "refused:" in gate.detail and gate is not stage:
        result.cause += f"; gate: {gate.detail}"  # which of the door's rules refused the groups
    posted = next((s for s in result.stages if s.name == "groups posted"), None)
    if posted is not None and "exception" in result.cause and "last error: None" not in posted.detail:
        result.cause += "; " + posted.detail.split("; ", 1)[-1]  # the environment's last error: the exception
    if reason and reason not in result.cause:
        result.cause += f"; the run ended: {reason}"
    result.fix = stage_fix(Stage(stage.name, stage.ok, result.cause), reason)


def stage_fix(stage: Stage, reason: str) -> str:
    """The fix for the first cause found, what ended the run first (it explains the stages after it)."""
    detail = stage.detail + " " + reason
    if "OverContextError" in detail:
        return "shorten its prompts or serve a longer context (actor_rollout_ref.rollout.max_model_len)"
    if "FileNotFoundError" in detail:
        return "it opens files relative to its checkout: give --checkout (processes start in the checkout's root)"
    if "equal_scores" in detail:
        return ("a fresh model scores every completion of a group alike; set ensure_scores_are_not_same: false in "
                "the environment's settings for the check, or check with a trained --model")
    if "returned_nothing" in detail:
        return ("the environment returned no group for its items (many drop groups whose scores are all equal); "
                "check with a trained --model, or see the environment's log")
    if "too_long" in detail or "response_too_long" in detail:
        return ("its sequences exceed the caps: see token_budget (response|total) and data.max_*_length; an untrained "
                "model's text can re-tokenize longer than it was sampled (check with a trained --model)")
    if "short_group" in detail:
        return "its groups are smaller than group_size (= actor_rollout_ref.rollout.n): atroposlib drops them"
    if "not routed" in detail:
        return "its own clients (judges) need their own servers and keys"
    return "see the environment's log in the run dir"


def check_environment(env: str, *, checkout: Path | None, groups: int, model: str | None, timeout: float,
                      workdir: Path, has_accelerator: bool, token_budget: str = "response") -> CheckResult:
    from atropos_verl.launch.run import run as run_stack

    started = time.monotonic()
    try:
        target = resolve_target(env, checkout)
    except FileNotFoundError as exc:
        result = CheckResult(target=env)
        result.add("imports", False, str(exc))
        result.cause, result.fix = f"imports: {exc}", import_fix(f"FileNotFoundError: {exc}")
        return result
    result = CheckResult(target=target)
    imported = import_stage(target, checkout)
    clients = own_clients(target)
    if imported.get("error"):
        result.add("imports", False, imported["error"])
        result.cause, result.fix = f"imports: {imported['error']}", import_fix(imported["error"])
        result.seconds = time.monotonic() - started
        return result
    result.add("imports", True, f"{target}")
    skipped = "; ".join(f"{s['name']} ({s['why']})" for s in imported.get("skipped") or [])
    result.add("class", True, f"{imported['chosen']}" + (", evaluation off" if imported.get("evaluation_off") else "")
               + (f"; skipped: {skipped}" if skipped else ""))
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "check.yaml"
    config_path.write_text(yaml.safe_dump(run_config(target, workdir, checkout=checkout, groups=groups, model=model,
                                                     timeout=timeout, token_budget=token_budget), sort_keys=False))
    posted = workdir / "check" / POSTED_FILE
    posted.parent.mkdir(parents=True, exist_ok=True)
    posted.unlink(missing_ok=True)  # a previous check's
    os.environ[POSTED_FILE_ENV] = str(posted)  # the environment process inherits it
    try:
        run = run_stack(config_path, [], has_accelerator=has_accelerator, live=False)
    finally:
        os.environ.pop(POSTED_FILE_ENV, None)
    result.run_dir = str(run.run_dir)
    runtime_stages(result, run.run_dir, run.exit_code, run.reason, clients)
    verdict(result, run.reason)
    result.seconds = time.monotonic() - started
    return result


def checks_dir() -> Path:
    """Where the last check of each environment is kept, for `envs list`."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "atropos-verl" / "env-checks"


def record_key(target: str) -> str:
    import hashlib

    return hashlib.sha1(target.encode()).hexdigest()[:16]


def save_result(result: CheckResult) -> Path:
    folder = checks_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record_key(result.target)}.json"
    path.write_text(json.dumps({**result.to_json(), "checked_at": time.time()}, indent=1))
    return path


def last_result(target: str) -> dict[str, Any] | None:
    try:
        return json.loads((checks_dir() / f"{record_key(target)}.json").read_text(encoding="utf-8")) or None
    except (OSError, ValueError):
        return None
