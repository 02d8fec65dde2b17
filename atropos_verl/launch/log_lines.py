# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""The one line of a child's log that says why it failed, for end lines, status records and doctor hints."""

from __future__ import annotations

import re
from pathlib import Path

ERROR_MARKERS = ("Error", "ERROR", "Exception", "Traceback")
#: A traceback's last line: the exception's (dotted) class name, then its message.
EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w]*\.)*[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Timeout\w*)(?::|$)")
#: Lines that carry an error marker but say nothing of the error (Hydra's hint after every failure it reports).
NOT_THE_ERROR = ("HYDRA_FULL_ERROR",)


def last_error_line(log_path: Path, *, or_last: bool = False, window: int = 500) -> str | None:
    """The last exception line (`SomeError: message`, a traceback's last line) among a log's final `window` lines;
    else the last line that looks like an error, hints such as Hydra's `HYDRA_FULL_ERROR` excepted; with `or_last`,
    the log's last line when none does. Used for the one-line reason of a failed process."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)" if or_last else None
    lines = [ln.strip() for ln in text.splitlines()[-window:] if ln.strip()]
    for line in reversed(lines):
        if EXCEPTION_LINE.match(line):
            return line[:500]
    for line in reversed(lines):
        if any(marker in line for marker in ERROR_MARKERS) and not any(hint in line for hint in NOT_THE_ERROR):
            return line[:500]
    if or_last:
        return lines[-1][:500] if lines else "(empty log)"
    return None
