# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""scripts/atropos_compat.py: its rows for the fixture checkout and for small checkouts written here, with real import
checks in subprocesses. Files whose import would reach `atroposlib.envs.base` cost seconds each, so most import cases
fail before that import on purpose."""

from __future__ import annotations

import importlib.util
import json
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_CHECKOUT = ROOT / "tests" / "fixtures" / "atropos_checkout"


def _load_script():
    spec = importlib.util.spec_from_file_location("atropos_compat", ROOT / "scripts" / "atropos_compat.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


compat = _load_script()

HEADER = "from atroposlib.envs.base import BaseEnv\n"


def _checkout(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return tmp_path


def _by_path(found: list[dict]) -> dict[str, dict]:
    return {row["path"]: row for row in found}


@pytest.fixture(scope="module")
def fixture_rows() -> dict[str, dict]:
    only = [
        "environments/broken.py",
        "environments/local_base.py",
        "environments/gsm8k_like_server.py",
        "environments/game/fancy_taxi.py",
        "environments/community/chat_env.py",
    ]
    return _by_path(compat.rows(FIXTURE_CHECKOUT, only=only, jobs=2, timeout=60))


def test_fixture_files_found_without_importing() -> None:
    found = _by_path(compat.rows(FIXTURE_CHECKOUT, load=False))
    assert sorted(found) == [
        "environments/broken.py",
        "environments/community/chat_env.py",
        "environments/game/base_game.py",
        "environments/game/board.py",
        "environments/game/fancy_taxi.py",
        "environments/game/taxi_like.py",
        "environments/gsm8k_like_server.py",
        "environments/guarded_import.py",
    ]  # local_base.py's classes derive from a local class merely named BaseEnv
    assert found["environments/game/board.py"]["classes"] == ["Chess", "Go"]
    assert found["environments/guarded_import.py"]["classes"] == ["Guarded", "FromPackage"]
    assert all(row["status"] == "not checked" for row in found.values())


def test_unparsable_file_gets_a_row(fixture_rows) -> None:
    row = fixture_rows["environments/broken.py"]
    assert row["parsed"] is False and row["classes"] == []
    assert row["category"] == "other"
    assert row["status"].startswith("other: SyntaxError: ")
    assert "local_base.py" not in " ".join(fixture_rows)


def test_missing_package_and_call_pattern(fixture_rows) -> None:
    row = fixture_rows["environments/gsm8k_like_server.py"]
    assert row["classes"] == ["MathEnv", "MathEnvWithTools"]
    assert (row["category"], row["status"]) == ("missing package", "missing package: missing_dependency")
    assert row["calls"] == ["managed_server(", ".chat_completion("]
    assert row["max_token_length"] == ["not used"]
    assert row["unimplemented"] == {"MathEnv": ["evaluate", "get_next_item"], "MathEnvWithTools": ["evaluate",
                                                                                                  "get_next_item"]}
    assert row["needs"] == {"keys": [], "data": [], "services": [], "gpu": []}


def test_subclass_of_a_checkout_base_across_files(fixture_rows) -> None:
    row = fixture_rows["environments/game/fancy_taxi.py"]
    assert row["classes"] == ["FancyTaxi"]
    # the call pattern comes from the bases' files, which importing fancy_taxi.py runs
    assert {"environments/game/taxi_like.py", "environments/game/base_game.py"} <= set(row["scanned"])
    assert row["calls"] == ["managed_server(", ".chat_completion("]
    # taxi_like.py is imported as a top-level sibling, so its relative import has no package
    assert row["category"] == "other"
    assert row["status"] == "other: ImportError: attempted relative import with no known parent package"


def test_loading_file_and_runtime_abstract_methods(fixture_rows) -> None:
    row = fixture_rows["environments/community/chat_env.py"]
    assert (row["category"], row["status"]) == ("loads", "loads")
    assert row["calls"] == [".chat_completion("]
    assert row["unimplemented"] == {"ChatEnv": ["evaluate", "get_next_item"]}
    assert row["abstract_at_runtime"] == {"ChatEnv": ["evaluate", "get_next_item"]}  # the static answer agrees


def test_import_failures_are_classified(tmp_path: Path) -> None:
    checkout = _checkout(
        tmp_path,
        {
            "environments/needs_pkg.py": "import zz_not_installed_pkg.sub\n" + HEADER + "class A(BaseEnv):\n    pass\n",
            "environments/old_lib.py": "from atroposlib.no_such_module import Thing\n" + HEADER
            + "class B(BaseEnv):\n    pass\n",
            "environments/old_attr.py": "import atroposlib\natroposlib.no_such_attribute\n" + HEADER
            + "class C(BaseEnv):\n    pass\n",
            "environments/crash.py": "raise SystemExit(3)\n" + HEADER + "class E(BaseEnv):\n    pass\n",
            "environments/slow.py": "import time\ntime.sleep(60)\n" + HEADER + "class F(BaseEnv):\n    pass\n",
        },
    )
    start = time.monotonic()
    found = _by_path(compat.rows(checkout, timeout=4, jobs=2))
    assert time.monotonic() - start < 30
    status = {path.removeprefix("environments/"): row["status"] for path, row in found.items()}
    assert status["needs_pkg.py"] == "missing package: zz_not_installed_pkg"
    assert status["old_lib.py"].startswith("written for another atroposlib: ModuleNotFoundError: ")
    assert status["old_attr.py"].startswith("written for another atroposlib: AttributeError: ")
    assert status["crash.py"] == "other: SystemExit: 3"
    assert status["slow.py"] == "other: no result after 4 s (killed)"


def test_loader_refusing_a_folder_name_is_its_own_category(tmp_path: Path) -> None:
    # Whether load_file refuses such folders depends on its version; the classification of its refusal does not.
    result = {"ok": False, "type": "ImportError", "name": None,
              "message": f"{tmp_path}/environments/my-env/env.py: ['my-env'] are not Python identifiers"}
    category, status = compat.classify(result, tmp_path, tmp_path / "environments" / "my-env")
    assert category == "folder not a Python identifier"
    assert status == ("folder not a Python identifier (ImportError: environments/my-env/env.py: ['my-env'] are not "
                      "Python identifiers)")


def test_children_of_an_imported_module_are_ended(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    checkout = _checkout(
        tmp_path / "co",
        {
            "environments/spawns.py": f"""\
                import subprocess
                child = subprocess.Popen(["sleep", "120"])
                open({str(pid_file)!r}, "w").write(str(child.pid))
                raise RuntimeError("after starting a child")
                {HEADER}
                class G(BaseEnv):
                    pass
                """
        },
    )
    (row,) = compat.rows(checkout, timeout=20)
    assert row["status"] == "other: RuntimeError: after starting a child"
    proc = Path(f"/proc/{pid_file.read_text()}/status")
    deadline = time.monotonic() + 10
    while proc.exists() and "zombie" not in proc.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not proc.exists() or "zombie" in proc.read_text()


def test_static_needs_calls_and_budget(tmp_path: Path) -> None:
    checkout = _checkout(
        tmp_path,
        {
            "environments/judge/helpers.py": """\
                import os
                import subprocess
                from datasets import load_dataset

                def data():
                    return load_dataset("org/puzzles", split="train")

                def sandbox():
                    subprocess.Popen(["docker", "run", "sandbox"])
                    return "http://localhost:5002/run"
                """,
            "environments/judge/base.py": """\
                from atroposlib.envs.base import BaseEnv

                class JudgeBase(BaseEnv):
                    async def evaluate(self, *args, **kwargs):
                        pass
                """,
            "environments/judge/env.py": """\
                import os
                import vllm
                from openai import AsyncOpenAI
                from atroposlib.envs.base import APIServerConfig
                from .base import JudgeBase
                from . import helpers

                class JudgeEnv(JudgeBase):
                    @classmethod
                    def config_init(cls):
                        return APIServerConfig(base_url="http://localhost:9001/v1", api_key=os.getenv("OPENAI_API_KEY"))

                    async def setup(self):
                        self.judge = AsyncOpenAI(api_key=os.environ["JUDGE_API_KEY"])
                        self.debug = os.environ.get("DEBUG_LEVEL")

                    async def collect_trajectories(self, item):
                        budget = self.config.max_token_length - len(item)
                        params = {"max_tokens": self.config.max_token_length // 2}
                        out = await self.server.completion(prompt="x", max_tokens=self.config.max_token_length)
                        if len(out) > self.config.max_token_length:
                            return None
                        return self.tokenize_for_trainer(out), self.server.servers
                """,
        },
    )
    found = _by_path(compat.rows(checkout, load=False))
    assert sorted(found) == ["environments/judge/base.py", "environments/judge/env.py"]
    row = found["environments/judge/env.py"]
    assert row["needs"] == {
        "keys": ["JUDGE_API_KEY", "OPENAI_API_KEY", "own client (judge): AsyncOpenAI"],
        "data": ["load_dataset org/puzzles"],
        "services": ["localhost:5002", "runs `docker`"],  # not localhost:9001, the inference server's default
        "gpu": ["vllm"],
    }
    assert row["calls"] == ["tokenize_for_trainer(", ".completion(", "server.servers"]
    assert row["max_token_length"] == ["as max_tokens", "as max_tokens (scaled)", "length check", "total budget"]
    # evaluate comes from the checkout base in another file; get_next_item from nowhere
    assert row["unimplemented"] == {"JudgeEnv": ["get_next_item"]}


def test_abstract_methods_from_a_local_base_in_the_same_file(tmp_path: Path) -> None:
    checkout = _checkout(
        tmp_path,
        {
            "environments/full.py": HEADER
            + textwrap.dedent("""\
                class Mixed(BaseEnv):
                    async def get_next_item(self):
                        pass
                    evaluate = get_next_item

                class Leaf(Mixed):
                    pass
                """),
        },
    )
    (row,) = compat.rows(checkout, load=False)
    assert row["classes"] == ["Mixed", "Leaf"]
    assert row["unimplemented"] == {}


def test_verdicts_render_and_main(tmp_path: Path) -> None:
    checkout = _checkout(
        tmp_path / "co",
        {
            "environments/a.py": "import zz_not_installed_pkg\n" + HEADER + "class A(BaseEnv):\n    pass\n",
            "environments/b.py": "import zz_not_installed_pkg\n" + HEADER + "class B(BaseEnv):\n    pass\n",
            "environments/c.py": "import zz_other_pkg\n" + HEADER + "class C(BaseEnv):\n    pass\n",
        },
    )
    verdicts = tmp_path / "verdicts"
    verdicts.mkdir()
    results = {
        "a": {"target": "environments/a.py", "verdict": "pass", "cause": None, "fix": None, "stages": []},
        "b": {"target": str(checkout / "environments" / "b.py") + ":B", "verdict": "fail", "cause": "no items",
              "fix": "give it data", "stages": [{"name": "import", "ok": True, "detail": ""}]},
    }
    for name, data in results.items():
        (verdicts / f"{name}.json").write_text(json.dumps(data))
    (verdicts / "junk.json").write_text("{not json")

    found = compat.rows(checkout, load=False, verdicts=verdicts)
    assert [r["verdict"] for r in found] == ["pass", "fail: no items", "not checked"]
    page = compat.render(found, command="cmd --x", commit="abc123", date="2026-01-02")
    assert page.startswith("# ")
    assert "`cmd --x`" in page and "abc123" in page and "2026-01-02" in page
    assert "| pass | 1 |" in page and "| fail | 1 |" in page and "| not checked | 1 |" in page
    assert "| `environments/b.py` | B | not checked |" in page

    out, as_json = tmp_path / "docs" / "compat.md", tmp_path / "rows.json"
    args = [str(checkout), "--out", str(out), "--json", str(as_json), "--timeout", "20", "--verdicts", str(verdicts)]
    assert compat.main(args) == 0
    text = out.read_text()
    assert "not a git repository" in text and "scripts/atropos_compat.py" in text
    assert "| missing package | 3 |" in text
    assert "| zz_not_installed_pkg | 2 |" in text and "| zz_other_pkg | 1 |" in text
    assert "| `environments/b.py` | B | missing package: zz_not_installed_pkg |" in text
    rows = json.loads(as_json.read_text())
    assert [r["verdict"] for r in rows] == ["pass", "fail: no items", "not checked"]
