# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""What exactly was trained, sequence by sequence (`atropos.batch_trace: PATH`, off by default).

One JSON line per trained sequence: step, environment, group uid, prompt and response token ids (padding removed),
the response positions that got gradient, the sampling temperature, whether the environment's log-probs were
used, and the policy version that generated it. It answers "did my environment's masks survive the trip?" without a
debugger; the conformance tests use it.
"""

from __future__ import annotations

import json
from pathlib import Path

from verl import DataProto


def write_trace(path: str | Path, step: int, data: DataProto, padding_key: str) -> int:
    """Append the real (non-padding) sequences of `data`; returns how many were written."""
    b = data.batch
    keep = (~b[padding_key]).nonzero().squeeze(-1).tolist() if padding_key in b.keys() else range(len(data))
    has_lp = "rollout_log_probs" in b.keys()
    versions = b["policy_version"].tolist() if "policy_version" in b.keys() else None
    names = data.non_tensor_batch.get("env_name", data.non_tensor_batch["env_id"])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    width_p = b["prompts"].shape[1]
    with path.open("a", encoding="utf-8") as fh:
        for i in keep:
            attn = b["attention_mask"][i].bool()
            prompt = b["prompts"][i][attn[:width_p]].tolist()
            response = b["responses"][i][attn[width_p:]].tolist()
            mask = b["response_mask"][i][: len(response)].tolist()
            fh.write(json.dumps({
                "step": step,
                "env": str(names[i]),
                "uid": str(data.non_tensor_batch["uid"][i]),
                "prompt": prompt,
                "response": response,
                "response_mask": mask,
                "temperature": float(b["temperature"][i]),
                "env_logprobs": has_lp,
                "policy_version": None if versions is None or versions[i] < 0 else int(versions[i]),
            }) + "\n")
            written += 1
    return written
