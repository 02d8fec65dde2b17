# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Post-import hooks: patches run right after the target module executes, or at once if it is already imported."""

from __future__ import annotations

import sys

from atropos_verl.import_hooks import pending_modules, when_imported


def test_patch_runs_after_import(tmp_path, monkeypatch):
    (tmp_path / "av_hook_target.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []
    when_imported("av_hook_target", lambda m: seen.append(m.VALUE))
    assert "av_hook_target" in pending_modules() and seen == []
    import av_hook_target  # noqa: F401

    assert seen == [1] and "av_hook_target" not in pending_modules()
    when_imported("av_hook_target", lambda m: seen.append(m.VALUE + 1))
    assert seen == [1, 2]
    sys.modules.pop("av_hook_target", None)
