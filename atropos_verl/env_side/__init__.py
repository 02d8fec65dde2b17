# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Code that runs inside environment processes (started as `python -m atropos_verl.env_side.runner`).

The launcher (parent process) only writes each environment's generated config (`launch/env_configs.py`) and starts
the runner; everything here executes in the environment's own interpreter, before and around atroposlib's `BaseEnv`:
loading the environment as its author wrote it, routing every server it declares to verl's replicas, compatibility
shims for the dependency world we install, abort retries, sampling-temperature stamps and posting health.
"""
