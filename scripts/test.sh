#!/usr/bin/env bash
# The README's test command: set up the CPU environment (idempotent), lint, then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_cpu.sh
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
