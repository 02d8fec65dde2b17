# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Environment files import as their authors ran them: relative imports, `from environments.x import`, siblings."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from atropos_verl.env_side.loading import find_root, load_file, module_name


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter (imports and sys.path changes stay out of the test process); must succeed."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=120)
    assert out.returncode == 0, out.stderr
    return out


def _checkout(tmp_path: Path) -> Path:
    root = tmp_path / "ck"
    _write(root / "pyproject.toml", "")
    _write(root / "environments" / "shared_utils.py", "VALUE = 41\n")
    _write(root / "environments" / "pkg" / "__init__.py", "")
    _write(root / "environments" / "pkg" / "scoring.py", "def score():\n    return 1\n")
    _write(root / "environments" / "pkg" / "relative_env.py",
           "from .scoring import score\nfrom environments.shared_utils import VALUE\nRESULT = score() + VALUE\n")
    _write(root / "environments" / "nopkg" / "helper.py", "X = 'sibling'\n")
    _write(root / "environments" / "nopkg" / "sibling_env.py",
           "import helper\nfrom . import helper as h2\nX = helper.X + h2.X[:0]\n")
    return root


def test_relative_and_checkout_rooted_imports(tmp_path):
    root = _checkout(tmp_path)
    path = root / "environments" / "pkg" / "relative_env.py"
    assert find_root(path) == root.resolve()
    assert module_name(path, root.resolve()) == "environments.pkg.relative_env"
    code = f"from atropos_verl.env_side.loading import load_file; m = load_file({str(path)!r}); print(m.RESULT)"
    out = _python(code, tmp_path)
    assert out.stdout.strip() == "42"


def test_namespace_folder_with_sibling_imports(tmp_path):
    root = _checkout(tmp_path)
    path = root / "environments" / "nopkg" / "sibling_env.py"
    code = f"from atropos_verl.env_side.loading import load_file; print(load_file({str(path)!r}, {str(root)!r}).X)"
    out = _python(code, tmp_path)
    assert out.stdout.strip() == "sibling"


def test_checkout_given_explicitly_wins_over_markers(tmp_path):
    root = _checkout(tmp_path)
    _write(root / "environments" / "pkg" / "pyproject.toml", "")  # a nested marker
    path = root / "environments" / "pkg" / "relative_env.py"
    assert find_root(path, root) == root.resolve()


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.py"):
        load_file(tmp_path / "nope.py")


def test_folders_that_are_not_identifiers_load_with_their_relative_and_sibling_imports(tmp_path):
    """Atropos has folders such as `pokemon-showdown`: no import statement can name them, but their files load."""
    root = tmp_path / "ck2"
    _write(root / ".git" / "x", "")
    _write(root / "environments" / "game-envs" / "poke-mon" / "rules.py", "TURNS = 3\n")
    _write(root / "environments" / "game-envs" / "poke-mon" / "battle_env.py",
           "from .rules import TURNS\nimport rules\nfrom environments.base_util import N\n"
           "X = TURNS + rules.TURNS + N\n")
    _write(root / "environments" / "base_util.py", "N = 1\n")
    env = root / "environments" / "game-envs" / "poke-mon" / "battle_env.py"
    assert module_name(env, root.resolve()) == "environments.game_envs.poke_mon.battle_env"
    out = _python(f"from atropos_verl.env_side.loading import load_file; m = load_file({str(env)!r}); "
                  "print(m.X, m.__name__)", tmp_path)
    assert out.stdout.split() == ["7", "environments.game_envs.poke_mon.battle_env"]


def test_runner_picks_the_most_derived_class(tmp_path):
    path = _write(tmp_path / "two.py", """
        from atroposlib.envs.base import BaseEnv as Base

        class Common(Base):
            name = "common"

            async def get_next_item(self):
                return None

            async def evaluate(self, *args, **kwargs):
                return None

        class Concrete(Common):
            name = "concrete"
    """)
    code = f"from atropos_verl.env_side.runner import resolve_env; print(resolve_env({str(path)!r}).__name__)"
    out = _python(code, tmp_path)
    assert out.stdout.strip() == "Concrete"


def test_a_class_lacking_only_evaluate_runs_with_evaluation_off(tmp_path):
    path = _write(tmp_path / "no_eval.py", """
        from atroposlib.envs.base import BaseEnv

        class TrainOnly(BaseEnv):
            name = "train_only"

            async def get_next_item(self):
                return None
    """)
    code = ("import asyncio, inspect; from atropos_verl.env_side.runner import resolve_env; "
            f"c = resolve_env({str(path)!r}); print(c.__name__, inspect.isabstract(c), asyncio.run(c.evaluate(None)))")
    out = _python(code, tmp_path)
    assert out.stdout.split() == ["TrainOnly", "False", "None"]
    assert "TrainOnly does not implement evaluate(): it runs with evaluation off" in out.stderr


def test_a_class_lacking_more_is_named_with_what_it_lacks(tmp_path):
    path = _write(tmp_path / "half.py", """
        from atroposlib.envs.base import BaseEnv

        class Half(BaseEnv):
            name = "half"
    """)
    code = f"from atropos_verl.env_side.runner import resolve_env; resolve_env({str(path)!r})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode != 0
    assert "half:Half cannot be built: it does not implement evaluate, get_next_item" in out.stderr
