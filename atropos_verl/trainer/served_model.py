# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The model name verl's rollout servers answer to, as they report it (OpenAI `GET /v1/models`)."""

from __future__ import annotations

import logging

import httpx

from atropos_verl.server_key import auth_headers, from_environment

logger = logging.getLogger(__name__)


def served_model_name(addresses: list[str], *, fallback: str, timeout: float = 10.0) -> str:
    """The first model id listed by the first server that answers; `fallback` when none does.

    Every replica serves the same model, and environments send this string as `model` on every request, so it must be
    exactly the served id (vLLM answers 404 to any other). The route needs the run's server key when it has one.
    """
    headers = auth_headers(from_environment())
    for addr in addresses:
        url = f"http://{addr}/v1/models"
        try:
            resp = httpx.get(url, timeout=timeout, headers=headers)
            resp.raise_for_status()
            models = [m["id"] for m in resp.json().get("data", [])]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            logger.warning("GET %s failed (%s)", url, exc)
            continue
        if models:
            return str(models[0])
    logger.warning("no rollout server listed its models; environments will ask for %r", fallback)
    return fallback
