# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""`python -m atropos_verl.api_side.server --host H --port P --settings F`: atroposlib's trajectory API behind the gate.

The routes, queue and batching are atroposlib's own app, unchanged; only the door in front of it is ours.
"""

from __future__ import annotations

import argparse
import logging
import os

import uvicorn

from atropos_verl.api_side.gate import Gate, GateSettings

#: The launcher's token for destructive routes travels in the environment, never on a command line.
TOKEN_ENV = "ATROPOS_VERL_API_TOKEN"


def build(settings: GateSettings):
    from atroposlib.api.server import app

    return Gate(app, settings, app.state)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--settings", required=True, help="JSON written by the launcher (GateSettings)")
    args = parser.parse_args(argv)
    settings = GateSettings.load(args.settings)
    settings.token = os.environ.get(TOKEN_ENV) or settings.token
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(build(settings), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
