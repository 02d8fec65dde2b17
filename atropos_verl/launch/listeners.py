# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Every listening TCP socket of a live run, by process: what doctor reports and the e2e test checks is loopback.

The run's processes are the members of the sessions the supervisor recorded in `<run_dir>/processes.json` (Ray's
GCS/raylet and vLLM stay in the trainer's session even when they change process group).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

import psutil

from atropos_verl.launch.processes import session_members


@dataclass(frozen=True)
class Listener:
    child: str  # the supervised child whose session it is in (api, trainer, an env)
    process: str
    pid: int
    ip: str
    port: int
    #: What a non-loopback listener is, when it is one we cannot bind to loopback (see TORCH_STORE).
    known: str | None = None

    @property
    def loopback(self) -> bool:
        try:
            addr = ipaddress.ip_address(self.ip)
        except ValueError:
            return False
        mapped = getattr(addr, "ipv4_mapped", None)  # ::ffff:127.0.0.1, how Ray's C++ servers bind
        return (mapped or addr).is_loopback

    def __str__(self) -> str:
        note = f" ({self.known})" if self.known else ""
        return f"{self.child}/{self.process} pid {self.pid} {self.ip}:{self.port}{note}"


#: torch.distributed's rendezvous store (rank 0 of verl's FSDP workers, at MASTER_PORT) listens on every interface:
#: neither backend of c10d's TCPStore server takes a bind address (the libuv one binds "::", the legacy one INADDR_ANY).
TORCH_STORE = "torch.distributed TCPStore: torch offers no bind address"


def _known(p: psutil.Process, port: int) -> str | None:
    try:
        master_port = p.environ().get("MASTER_PORT")
    except psutil.Error:
        return None
    return TORCH_STORE if master_port == str(port) else None


def run_sessions(run_dir: Path) -> dict[int, str]:
    """Session id -> child name, from the supervisor's record (empty when the run never started)."""
    try:
        record = json.loads((run_dir / "processes.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {int(sid): str(c.get("name")) for c in record for sid in c.get("sessions") or []}


def run_listeners(run_dir: Path) -> list[Listener]:
    """LISTEN sockets of every live process in the run's recorded sessions."""
    out = []
    for sid, child in run_sessions(run_dir).items():
        for p in session_members(sid):
            try:
                name, conns = p.name(), p.net_connections(kind="inet")
            except psutil.Error:
                continue
            out += [Listener(child, name, p.pid, c.laddr.ip, c.laddr.port, _known(p, c.laddr.port)) for c in conns
                    if c.status == psutil.CONN_LISTEN]
    return sorted(set(out), key=lambda x: (x.child, x.pid, x.port))
