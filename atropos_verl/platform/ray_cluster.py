# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Start and stop a private local Ray cluster for the CPU platform.

- Its own short `_temp_dir` ($TMPDIR/rv-XXXX, /tmp without TMPDIR): Ray's unix socket paths must stay within 107
  characters, and a private directory keeps concurrent jobs apart.
- Logical CPUs beyond the physical ones: each FSDP rank's placement bundle reserves `max_colocate_count` (3) CPUs,
  and verl's driver-side actors (load balancer `verl/.../router.py:322`, `AgentLoopWorker` `agent_loop.py:1217`,
  `RewardLoopWorker` `reward_loop.py:334`) ask for 1 CPU each; with 2 real CPUs they would never be scheduled.
  Logical CPUs are scheduling tokens, not threads.
- Shutdown is ours: `ray.shutdown()`, then every process Ray started that is still alive (vLLM engine cores
  included) is stopped by PID, then our /dev/shm segments are removed. Other children of the driver are left
  alone. Never `ray stop`, never a kill by process name.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from atropos_verl.launch.processes import started_since_boot
from atropos_verl.shm import ShmTracker

from .defaults import cpu_env_vars

DEFAULT_LOGICAL_CPUS = 16


def logical_cpus_needed(n_ranks: int, *, max_colocate_count: int = 3, driver_side_actors: int = 4) -> int:
    """Logical CPUs for `n_ranks` FSDP ranks plus verl's driver-side actors (load balancer, agent and reward loops)."""
    return n_ranks * max_colocate_count + driver_side_actors


@dataclass
class RayCluster:
    """Handle on the Ray cluster started by `start_ray`; `shutdown()` must be called by its owner."""

    temp_dir: Path
    num_cpus: int
    env_vars: dict[str, str]
    shm: ShmTracker
    roots: dict[int, float] = field(default_factory=dict)  # Ray's own processes started by ray.init (gcs, raylet..)
    known_pids: dict[int, float] = field(default_factory=dict)  # pid -> started_since_boot (guards against PID reuse)

    def descendants(self) -> list[psutil.Process]:
        """Ray's processes and everything they started (workers, vLLM engine cores); not other children of ours."""
        out: dict[int, psutil.Process] = {}
        for pid, created in self.roots.items():
            try:
                if started_since_boot(pid) != created:
                    continue
                root = psutil.Process(pid)
                out[pid] = root
                for child in root.children(recursive=True):
                    out[child.pid] = child
            except psutil.Error:
                continue
        return list(out.values())

    def record_processes(self) -> dict[int, float]:
        """Remember every live process of our tree and the /dev/shm segments they use; call while things run."""
        procs = self.descendants()
        for p in procs:
            try:
                self.known_pids.setdefault(p.pid, started_since_boot(p.pid))
            except psutil.Error:
                pass
        self.shm.observe([p.pid for p in procs])
        return dict(self.known_pids)

    def alive(self) -> list[psutil.Process]:
        """Processes we recorded (or that are still in Ray's tree) that have not exited."""
        out: dict[int, psutil.Process] = {p.pid: p for p in self.descendants()}
        for pid, created in self.known_pids.items():
            try:
                p = psutil.Process(pid)
                if started_since_boot(pid) == created and p.status() != psutil.STATUS_ZOMBIE:
                    out.setdefault(pid, p)
            except psutil.Error:
                continue
        return [p for p in out.values() if _running(p)]

    def shutdown(self, *, grace_s: float = 15.0) -> list[str]:
        """Stop Ray and everything it started; remove our shm segments and temp dir. Returns the removed segments."""
        import ray

        self.record_processes()
        if ray.is_initialized():
            ray.shutdown()
        deadline = time.monotonic() + grace_s
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        leftovers = self.alive()
        for p in leftovers:
            _signal(p, term=True)
        _, still = psutil.wait_procs(leftovers, timeout=5)
        for p in still:
            _signal(p, term=False)
        psutil.wait_procs(still, timeout=5)
        removed = self.shm.cleanup()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        return removed


def _running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal(p: psutil.Process, *, term: bool) -> None:
    try:
        p.terminate() if term else p.kill()
    except psutil.Error:
        pass


def start_ray(
    *,
    num_cpus: int | None = None,
    env_vars: Mapping[str, str] | None = None,
    object_store_memory: int = 512 << 20,
    temp_root: str | None = None,
    log_to_driver: bool = True,
) -> RayCluster:
    """`ray.init` a private local cluster for the CPU platform and return its handle (call `.shutdown()` yourself).

    `env_vars` are added to `cpu_env_vars()` in the job's runtime_env, so every worker and vLLM process sees them.
    """
    import ray

    if ray.is_initialized():
        raise RuntimeError("Ray is already initialised in this process; start_ray owns the cluster it starts")
    shm = ShmTracker().snapshot()
    children_before = {p.pid for p in psutil.Process().children()}
    # Under the launcher's private TMPDIR when there is one (removed with it even if we are killed), else /tmp.
    temp_dir = Path(tempfile.mkdtemp(prefix="rv-", dir=temp_root or os.environ.get("TMPDIR") or "/tmp"))
    env = cpu_env_vars(env_vars)
    # vLLM's ZMQ IPC sockets go to the system temp dir by default; keep them inside ours so shutdown removes them.
    env.setdefault("VLLM_RPC_BASE_PATH", str(temp_dir / "vllm"))
    (temp_dir / "vllm").mkdir(exist_ok=True)
    n = num_cpus or max(DEFAULT_LOGICAL_CPUS, os.cpu_count() or 1)
    ray.init(
        num_cpus=n,
        num_gpus=0,
        _temp_dir=str(temp_dir),
        include_dashboard=False,
        object_store_memory=object_store_memory,
        runtime_env={"env_vars": env},
        log_to_driver=log_to_driver,
    )
    roots = {}
    for p in psutil.Process().children():
        if p.pid not in children_before:
            try:
                roots[p.pid] = started_since_boot(p.pid)
            except psutil.Error:
                pass
    cluster = RayCluster(temp_dir=temp_dir, num_cpus=n, env_vars=env, shm=shm, roots=roots)
    cluster.record_processes()
    return cluster
