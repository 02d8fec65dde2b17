# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""`envs list` discovery: BaseEnv aliases, subclasses across files of a checkout, token-level labels through imports,
without importing anything (the fixtures would not import)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from atropos_verl.launch.envs_list import (
    CHAT_ONLY,
    TOKEN_LEVEL,
    base_env_classes,
    builtin_entries,
    generation_path,
    scan_checkout,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_CHECKOUT = ROOT / "tests" / "fixtures" / "atropos_checkout"


def _checkout(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    (tmp_path / "environments").mkdir(exist_ok=True)
    return tmp_path


def _scan(checkout: Path) -> dict[str, str]:
    """location (file:Class) -> generation label."""
    return {e.location: e.path for e in scan_checkout(checkout)}


def test_fixture_checkout_aliases_cross_file_subclasses_and_labels():
    found = _scan(FIXTURE_CHECKOUT)
    game = "environments/game/"
    assert found[f"{game}base_game.py:GameEnv"] == TOKEN_LEVEL  # BaseEnv imported as Base
    assert found[f"{game}taxi_like.py:TaxiLike"] == TOKEN_LEVEL  # relative import; managed_server only in base_game
    assert found[f"{game}fancy_taxi.py:FancyTaxi"] == TOKEN_LEVEL  # sibling import, three levels across three files
    assert found[f"{game}board.py:Chess"] == TOKEN_LEVEL  # absolute import from the checkout root
    assert found[f"{game}board.py:Go"] == TOKEN_LEVEL  # `import ... as games`, `games.GameEnv`
    assert found["environments/guarded_import.py:Guarded"] == CHAT_ONLY  # the except-branch stand-in is a fallback
    assert found["environments/guarded_import.py:FromPackage"] == CHAT_ONLY  # `from atroposlib.envs import BaseEnv`
    assert found["environments/community/chat_env.py:ChatEnv"] == CHAT_ONLY
    assert found["environments/gsm8k_like_server.py:MathEnvWithTools"] == TOKEN_LEVEL
    assert not [loc for loc in found if loc.startswith(("environments/local_base.py", "environments/broken.py"))]
    assert "environments/gsm8k_like_server.py:NotAnEnv" not in found


def test_base_env_classes_reads_one_file_of_a_checkout():
    path = FIXTURE_CHECKOUT / "environments" / "game" / "board.py"
    assert base_env_classes(path, FIXTURE_CHECKOUT) == ["Chess", "Go"]
    assert base_env_classes(FIXTURE_CHECKOUT / "environments" / "local_base.py", FIXTURE_CHECKOUT) == []


def test_import_and_reexport_cycles_end(tmp_path):
    checkout = _checkout(
        tmp_path,
        {
            "environments/a.py": """
                from atroposlib.envs.base import BaseEnv
                from environments.b import helper, X

                class A(BaseEnv):
                    pass

                class FromCycle(X):
                    pass
            """,
            "environments/b.py": """
                from environments.a import A, X

                def helper(server):
                    return server.tokens_and_logprobs_completion(prompt="x")
            """,
        },
    )
    found = _scan(checkout)
    assert found == {"environments/a.py:A": TOKEN_LEVEL}  # the marker is in b, which a imports; X resolves nowhere


def test_library_inside_checkout_is_followed_for_bases_but_not_for_labels(tmp_path):
    checkout = _checkout(
        tmp_path,
        {
            "atroposlib/__init__.py": "",
            "atroposlib/envs/__init__.py": "",
            "atroposlib/envs/base.py": """
                from .server import ManagedServer

                class BaseEnv:
                    def managed(self):
                        return ManagedServer(self)
            """,
            "atroposlib/envs/server.py": "class ManagedServer:\n    pass\n",
            "atroposlib/envs/special.py": """
                from abc import ABC

                from .base import BaseEnv

                class SpecialEnv(BaseEnv, ABC):
                    pass
            """,
            "environments/mine.py": """
                from atroposlib.envs.special import SpecialEnv

                class Mine(SpecialEnv):
                    pass
            """,
        },
    )
    assert _scan(checkout) == {"environments/mine.py:Mine": CHAT_ONLY}


def test_star_import_shadowing_and_names_that_only_look_like_base_env(tmp_path):
    checkout = _checkout(
        tmp_path,
        {
            "environments/pkg/__init__.py": "from .core import *\n",
            "environments/pkg/core.py": """
                import atroposlib.envs.base as b

                class Core(b.BaseEnv):
                    pass
            """,
            "environments/uses_pkg.py": """
                from environments.pkg import *

                class Star(Core):
                    pass
            """,
            "environments/shadow.py": """
                from environments.pkg import Core

                class Core(Core):
                    pass

                class AfterShadow(Core):
                    pass
            """,
            "environments/fake.py": """
                import fake_lib as atroposlib

                class BaseEnv:
                    pass

                class NotOne(BaseEnv):
                    pass

                class NotTwo(atroposlib.envs.base.BaseEnv):
                    pass
            """,
        },
    )
    found = _scan(checkout)
    assert set(found) == {
        "environments/pkg/core.py:Core",
        "environments/uses_pkg.py:Star",
        "environments/shadow.py:Core",
        "environments/shadow.py:AfterShadow",
    }
    assert set(found.values()) == {CHAT_ONLY}


def test_broken_files_and_bad_relative_imports_are_skipped(tmp_path):
    checkout = _checkout(
        tmp_path,
        {
            "environments/bad_syntax.py": "class (\n",
            "environments/too_far.py": """
                from ....nowhere import Thing
                from atroposlib.envs.base import BaseEnv

                class Far(Thing):
                    pass

                class Near(BaseEnv):
                    pass
            """,
            "environments/child.py": """
                from latin import Parent

                class Child(Parent):
                    pass
            """,
        },
    )
    (checkout / "environments" / "latin.py").write_bytes(b"# caf\xe9\nfrom atroposlib.envs.base import BaseEnv\n")
    assert _scan(checkout) == {"environments/too_far.py:Near": CHAT_ONLY}


def test_missing_environments_dir_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="environments/"):
        scan_checkout(tmp_path)


def test_generation_path_reads_code_not_comments():
    assert generation_path("async with self.server.managed_server(tokenizer=t) as m:\n    pass\n") == TOKEN_LEVEL
    assert generation_path("x = ManagedServer(server)\n") == TOKEN_LEVEL
    assert generation_path("# uses managed_server( later\ndoc = 'ManagedServer(' \n") == CHAT_ONLY
    assert generation_path("broken ( managed_server(") == TOKEN_LEVEL  # unparseable: a plain search
    assert {e.name: e.path for e in builtin_entries()}["addition"] == TOKEN_LEVEL
