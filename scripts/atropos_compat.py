# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Write docs/compatibility.md: which environments of an Atropos checkout import here, and what each one needs.

    .venv/bin/python scripts/atropos_compat.py CHECKOUT --out docs/compatibility.md [--verdicts DIR] [--json FILE]

Users pick environments from a checkout; this table tells them before a launch which ones import against the pinned
atroposlib, which need keys, downloads, services or a GPU, and how each one asks the server for tokens. Environments
are found by parsing (`env_discovery`, as `envs list` does). The import check runs each file in its own short-lived
process (offline, from the checkout root, loaded by `load_file` as the env runner loads it), because importing
executes the file's code and a crash or hang must not take the scan down. Everything else is read from the source
of the file and the checkout modules it imports, so it also describes files that do not import. `--verdicts` adds the
outcome of `atropos-verl envs check ... --json FILE` runs.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from atropos_verl.launch.env_discovery import Checkout

LIBRARY = "atroposlib"
ABSTRACT = ("evaluate", "get_next_item")  # BaseEnv's abstract methods in atroposlib 0.4.0
CATEGORIES = ("loads", "missing package", "written for another atroposlib", "folder not a Python identifier", "other")
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
# Quiet and side-effect free: no bytecode written into the checkout, no wandb runs, no tokenizer thread pools.
PROBE_ENV = {**OFFLINE, "PYTHONDONTWRITEBYTECODE": "1", "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"}

SERVER_CALLS = ("managed_server", "ManagedServer", "tokenize_for_trainer", "chat_completion", "completion",
                "tokens_and_logprobs_completion")
METHOD_CALLS = {"chat_completion", "completion"}  # shown as `.name(`: they are methods of a server or client
CLIENTS = {"OpenAI", "AsyncOpenAI", "AzureOpenAI", "AsyncAzureOpenAI", "Anthropic", "AsyncAnthropic"}
KEY_NAME = re.compile(r"_(KEY|TOKEN)(_|$)")
DOWNLOAD_CALLS = {"requests.get", "httpx.get", "urllib.request.urlopen", "urllib.request.urlretrieve", "urlopen",
                  "urlretrieve", "wget.download"}
HUB_CALLS = {"hf_hub_download", "snapshot_download"}
SUBPROCESS_CALLS = {"subprocess.Popen", "subprocess.run", "subprocess.call", "subprocess.check_call",
                    "subprocess.check_output", "os.system", "asyncio.create_subprocess_exec",
                    "asyncio.create_subprocess_shell", "os.popen"}
SERVICE_PACKAGES = {"docker", "modal", "e2b", "e2b_code_interpreter", "redis", "boto3", "kubernetes"}
GPU_PACKAGES = {"vllm", "sglang", "flash_attn", "bitsandbytes", "deepspeed", "triton", "xformers", "cupy", "apex",
                "pynvml", "nvidia", "flashinfer", "auto_gptq", "awq"}
LOCAL_URL = re.compile(r"\b(?:localhost|127\.0\.0\.1|0\.0\.0\.0):(\d+)")
# Keywords/fields whose URL is the inference server or the Atropos API every environment talks to: not a need.
DEFAULT_URL_FIELDS = {"base_url", "rollout_server_url", "api_base", "server_url"}
MAX_TOKENS_KW = {"max_tokens", "max_completion_tokens", "max_new_tokens"}

# Runs in a fresh interpreter (`python -P`, so the checkout root is not sys.path[0] until load_file puts it there).
_PROBE = r"""
import json, os, sys, types
out, path, checkout, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
result = {"ok": False}
try:
    import atroposlib  # the installed package, before the checkout's own atroposlib/ folder can shadow it
    result["atroposlib"] = atroposlib.__file__
    from atropos_verl.env_side.loading import load_file
    module = load_file(path, checkout)
    result["ok"] = True
    classes = {n: getattr(module, n, None) for n in names}
    result["abstract"] = {n: sorted(getattr(c, "__abstractmethods__", None) or ()) for n, c in classes.items()}
except BaseException as exc:
    owner = getattr(exc, "obj", None) if isinstance(exc, AttributeError) else None
    if isinstance(owner, types.ModuleType):
        owner = owner.__name__
    elif owner is not None:
        owner = owner.__module__ if isinstance(owner, type) else type(owner).__module__
    name = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
    result.update(type=type(exc).__name__, message=str(exc), name=name, owner=owner)
with open(out, "w") as f:
    json.dump(result, f)
os._exit(0)  # threads or children the module started must not keep this process alive
"""


# -- reading source ----------------------------------------------------------------------------------------------------
class _Source:
    """Parsed files of one checkout and the checkout files each one imports (transitively)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.trees: dict[Path, ast.Module | None] = {}

    def tree(self, path: Path) -> ast.Module | None:
        if path not in self.trees:
            try:
                self.trees[path] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            except (SyntaxError, ValueError, OSError, RecursionError):
                self.trees[path] = None
        return self.trees[path]

    def find(self, parts: Iterable[str], folder: Path | None) -> Path | None:
        """The file a dotted module name names: in the importer's folder (sibling import), else from the root."""
        parts = list(parts)
        for base in dict.fromkeys(b for b in (folder, self.root) if b is not None):
            target = base.joinpath(*parts)
            for candidate in (target.with_name(target.name + ".py"), target / "__init__.py"):
                if candidate.is_file():
                    return candidate
        return None

    def _imports(self, path: Path) -> list[Path]:
        tree = self.tree(path)
        wanted: list[tuple[list[str], Path | None]] = []
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Import):
                wanted += [(a.name.split("."), path.parent) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    package = list(path.relative_to(self.root).parts[:-1])
                    if node.level - 1 > len(package):
                        continue
                    base, folder = package[: len(package) - node.level + 1], None
                else:
                    base, folder = [], path.parent
                base += node.module.split(".") if node.module else []
                wanted += [([*base, a.name], folder) for a in node.names if a.name != "*"] + [(base, folder)]
        found = []
        for parts, folder in wanted:
            if parts and parts[0] != LIBRARY:
                found += [f for i in range(1, len(parts) + 1) if (f := self.find(parts[:i], folder))]
        return list(dict.fromkeys(found))

    def scope(self, path: Path) -> list[Path]:
        """`path` and every checkout file importing it would run (its local bases live there too)."""
        order, stack = [path], [path]
        while stack:
            for f in self._imports(stack.pop()):
                if f not in order:
                    order.append(f)
                    stack.append(f)
        return order


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else None
    return None


def _last(node: ast.AST) -> str | None:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def _text(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _arg(call: ast.Call, index: int, keyword: str) -> ast.AST | None:
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    return call.args[index] if len(call.args) > index else None


def _command_head(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.List | ast.Tuple) and node.elts:
        return _text(node.elts[0])
    text = _text(node)
    return text.split()[0] if text and text.split() else None


def _facts(tree: ast.Module) -> dict[str, set[str]]:
    """What one parsed file needs and how it talks to the server (see the module docstring)."""
    facts: dict[str, set[str]] = {k: set() for k in ("keys", "data", "services", "gpu", "calls", "max_token_length")}
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    default_urls: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in DEFAULT_URL_FIELDS:
            default_urls.update(id(n) for n in ast.walk(node.value))
        elif isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None:
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(_last(t) in DEFAULT_URL_FIELDS for t in targets):
                default_urls.update(id(n) for n in ast.walk(node.value))

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            _call_facts(node, facts)
        elif isinstance(node, ast.Subscript) and (_dotted(node.value) or "").endswith("environ"):
            if (name := _text(node.slice)) and KEY_NAME.search(name):
                facts["keys"].add(name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for top in {m.split(".")[0] for m in modules if not getattr(node, "level", 0)}:
                if top in GPU_PACKAGES:
                    facts["gpu"].add(top)
                if top in SERVICE_PACKAGES:
                    facts["services"].add(top)
        elif isinstance(node, ast.Attribute):
            if _dotted(node) == "torch.cuda":
                facts["gpu"].add("torch.cuda")
            elif node.attr == "max_token_length" and isinstance(node.ctx, ast.Load):
                facts["max_token_length"].add(_budget_use(node, parents))
            elif _last(node.value) == "server" and node.attr not in SERVER_CALLS:
                facts["calls"].add(f"server.{node.attr}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in default_urls:
            facts["services"].update(f"localhost:{port}" for port in LOCAL_URL.findall(node.value))
    return facts


def _call_facts(node: ast.Call, facts: dict[str, set[str]]) -> None:
    name, full = _last(node.func), _dotted(node.func) or ""
    if name == "getenv" or (name in ("get", "setdefault", "pop") and full.endswith(f"environ.{name}")):
        if (var := _text(_arg(node, 0, "key"))) and KEY_NAME.search(var):
            facts["keys"].add(var)
    if name in CLIENTS:
        facts["keys"].add(f"own client (judge): {name}")
    if name == "load_dataset":
        facts["data"].add(f"load_dataset {_text(_arg(node, 0, 'path')) or '(computed name)'}")
    if name in HUB_CALLS:
        facts["data"].add(f"{name} {_text(_arg(node, 0, 'repo_id')) or '(computed repo)'}")
    if full in DOWNLOAD_CALLS:
        facts["data"].add(f"download ({full})")
    if full in SUBPROCESS_CALLS:
        head = _command_head(_arg(node, 0, "args"))
        facts["services"].add(f"runs `{os.path.basename(head)}`" if head else "subprocess")
    if full.startswith("docker."):
        facts["services"].add("docker")
    if name == "cuda" and isinstance(node.func, ast.Attribute):
        facts["gpu"].add("torch.cuda")
    if name in SERVER_CALLS:
        facts["calls"].add(f".{name}(" if name in METHOD_CALLS else f"{name}(")


def _budget_use(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> str:
    """How one read of `max_token_length` uses it: the completion's cap, or the whole budget that parts come out of."""
    parent = parents.get(node)
    if isinstance(parent, ast.BinOp) and isinstance(parent.op, ast.Sub) and parent.left is node:
        return "total budget"
    if _max_tokens_slot(node, parent):
        return "as max_tokens"
    if isinstance(parent, ast.Compare):
        return "length check"
    if isinstance(parent, ast.BinOp | ast.Call):  # `max_token_length // 3`, `min(..., max_token_length)`
        above = parents.get(parent)
        if _max_tokens_slot(parent, above):
            return "as max_tokens (scaled)"
        if isinstance(above, ast.Compare):
            return "length check"
    return "other read"


def _max_tokens_slot(node: ast.AST, parent: ast.AST | None) -> bool:
    """Whether `node` is the value of `max_tokens=` or of a `"max_tokens":` entry of a dict literal."""
    if isinstance(parent, ast.keyword):
        return parent.arg in MAX_TOKENS_KW
    if isinstance(parent, ast.Dict):
        return any(v is node and _text(k) in MAX_TOKENS_KW for k, v in zip(parent.keys, parent.values, strict=True))
    return False


# -- classes -----------------------------------------------------------------------------------------------------------
def _defines(cls: ast.ClassDef) -> set[str]:
    names = set()
    for stmt in cls.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(stmt.name)
        elif isinstance(stmt, ast.Assign | ast.AnnAssign):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


class _Classes:
    """Follows an environment class's bases inside the checkout, by the names its module binds (imports included)."""

    def __init__(self, checkout: Checkout, source: _Source) -> None:
        self.checkout, self.source = checkout, source

    def _by_dotted(self, dotted: str, folder: Path | None, seen: frozenset) -> tuple[Path, ast.ClassDef] | str | None:
        """A checkout class for `a.b.C`, "library" for an atroposlib name, None when not found in the checkout."""
        parts = dotted.split(".")
        if parts[0] == LIBRARY:
            return "library"
        if (dotted, folder) in seen:
            return None
        seen = seen | {(dotted, folder)}
        for i in range(len(parts) - 1, 0, -1):
            path = self.source.find(parts[:i], folder)
            if path is None:
                continue
            mod = self.checkout.module(path)
            bound = mod.get(parts[i]) if mod is not None else None
            if isinstance(bound, ast.ClassDef):
                return (path, bound) if i == len(parts) - 1 else None
            rest = ".".join(parts[i + 1 :])
            refs = [bound] if bound is not None else list(mod.star) if mod is not None else []
            for ref in refs:
                tail = ".".join(p for p in (ref.dotted, "" if bound else parts[i], rest) if p)
                if (found := self._by_dotted(tail, ref.folder, seen)) is not None:
                    return found
            return None
        return None

    def base(self, path: Path, cls: ast.ClassDef, node: ast.expr) -> tuple[Path, ast.ClassDef] | str | None:
        while isinstance(node, ast.Subscript):  # Generic-style `Base[Item]`
            node = node.value
        dotted = _dotted(node)
        mod = self.checkout.module(path)
        if not dotted or mod is None:
            return None
        head, _, rest = dotted.partition(".")
        bound = mod.get(head, before=cls.lineno)
        if isinstance(bound, ast.ClassDef):
            return (path, bound) if not rest else None
        refs = [bound] if bound is not None else list(mod.star)
        for ref in refs:
            tail = ".".join(p for p in (ref.dotted, "" if bound else head, rest) if p)
            if (found := self._by_dotted(tail, ref.folder, frozenset())) is not None:
                return found
        return None

    def unimplemented(self, path: Path, cls: ast.ClassDef) -> tuple[list[str], list[str]]:
        """BaseEnv's abstract methods that neither `cls` nor a checkout base defines; bases not found in the checkout
        (nor in atroposlib) are returned too, since they might define them."""
        missing, unresolved, seen = set(ABSTRACT), [], set()
        stack = [(path, cls)]
        while stack:
            where, current = stack.pop()
            if (where, current.name, current.lineno) in seen:
                continue
            seen.add((where, current.name, current.lineno))
            missing -= _defines(current)
            for node in current.bases:
                found = self.base(where, current, node)
                if isinstance(found, tuple):
                    stack.append(found)
                elif found is None and _dotted(node) not in (None, "object"):
                    unresolved.append(ast.unparse(node))
        return sorted(missing), unresolved


# -- import check ------------------------------------------------------------------------------------------------------
def _probe(path: Path, root: Path, classes: list[str], timeout: float) -> dict:
    """Import `path` in its own process group; kill the group when it does not finish in `timeout` seconds."""
    with tempfile.TemporaryDirectory(prefix="atropos_compat_") as tmp:
        out = Path(tmp) / "result.json"
        env = {**os.environ, **PROBE_ENV}
        start = time.monotonic()
        with open(Path(tmp) / "stderr", "w+b") as err:
            proc = subprocess.Popen(
                [sys.executable, "-P", "-c", _PROBE, str(out), str(path), str(root), *classes],
                cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                start_new_session=True,
            )
            timed_out = False
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                try:  # the module may have started children; they are in the probe's process group
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
            err.seek(0)
            tail = err.read()[-2000:].decode("utf-8", "replace").strip().splitlines()
        seconds = round(time.monotonic() - start, 1)
        if out.is_file():
            return {**json.loads(out.read_text()), "seconds": seconds}
        if timed_out:
            return {"ok": False, "timeout": timeout, "seconds": seconds}
        last = tail[-1] if tail else ""
        return {"ok": False, "type": f"exit code {proc.returncode}", "message": last, "seconds": seconds}


def _short(message: str, root: Path, limit: int = 160) -> str:
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    text = (lines[0] if lines else "").replace(f"{root}/", "").replace(str(root), ".")
    text = re.sub(r" \(/[^()]*\)", "", text)  # `cannot import name ... (/abs/path/__init__.py)`
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _installed(top: str) -> bool:
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def classify(result: dict, root: Path, folder: Path) -> tuple[str, str]:
    """(category, status line) for one import result, `folder` being the environment file's folder."""
    if result.get("ok"):
        return "loads", "loads"
    if "timeout" in result:
        return "other", f"other: no result after {result['timeout']:g} s (killed)"
    kind, message = result.get("type", "?"), _short(result.get("message", ""), root)
    name, owner = result.get("name") or "", result.get("owner") or ""
    if kind == "ImportError" and "identifier" in message:
        return "folder not a Python identifier", f"folder not a Python identifier ({kind}: {message})"
    if kind == "ModuleNotFoundError" and name:
        top = name.split(".")[0]
        local = any(base.joinpath(top).exists() or base.joinpath(f"{top}.py").exists() for base in (root, folder))
        if top != LIBRARY and not local:
            if _installed(top):
                return "other", f"other: {kind}: {message} ({top} is installed)"
            return "missing package", f"missing package: {top}"
    library = name.startswith(LIBRARY) or owner.startswith(LIBRARY) or re.search(rf"\b{LIBRARY}\b", message)
    if library and kind in ("ImportError", "ModuleNotFoundError", "AttributeError"):
        return "written for another atroposlib", f"written for another atroposlib: {kind}: {message}"
    return "other", f"other: {kind}: {message}"


# -- verdicts ----------------------------------------------------------------------------------------------------------
def _target_path(target: str, root: Path) -> str:
    """`envs check` targets may be absolute, relative to the checkout, or carry a `:Class` suffix."""
    path, sep, _cls = target.rpartition(":")
    if not (sep and path.endswith(".py")):
        path = target
    candidate = Path(path)
    if candidate.is_absolute():
        try:
            return candidate.resolve().relative_to(root).as_posix()
        except ValueError:
            return candidate.as_posix()
    return candidate.as_posix().removeprefix("./")


def read_verdicts(directory: Path, root: Path) -> dict[str, list[str]]:
    """Relative path -> ["pass" | "fail: cause"], from the JSON files `envs check --json` wrote into `directory`."""
    verdicts: dict[str, list[str]] = {}
    for file in sorted(Path(directory).glob("*.json")):
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
            target, verdict = str(data["target"]), str(data["verdict"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"warning: {file}: not an envs check result ({exc})", file=sys.stderr)
            continue
        line = "pass" if verdict == "pass" else f"{verdict}: {data.get('cause') or 'no cause given'}"
        verdicts.setdefault(_target_path(target, root), []).append(line)
    return verdicts


# -- rows --------------------------------------------------------------------------------------------------------------
def _candidates(root: Path, source: _Source, checkout: Checkout) -> list[tuple[Path, list[str]]]:
    """Environment files, and files that do not parse (whether they are environments cannot be told)."""
    found = []
    for path in sorted((root / "environments").rglob("*.py")):
        if source.tree(path) is None:
            found.append((path, []))
        elif classes := checkout.env_classes(path):
            found.append((path, classes))
    return found


def rows(
    checkout: Path,
    *,
    timeout: float = 60.0,
    jobs: int = 1,
    verdicts: Path | None = None,
    only: Iterable[str] | None = None,
    load: bool = True,
) -> list[dict]:
    """One dict per environment file of `checkout` (sorted by path); `only` limits them to those relative paths,
    `load=False` skips the import check (status "not checked")."""
    root = Path(checkout).resolve()
    if not (root / "environments").is_dir():
        raise FileNotFoundError(f"{checkout} has no environments/ folder; is it an Atropos checkout?")
    source, parsed = _Source(root), Checkout(root)
    classes_of = _Classes(parsed, source)
    wanted = {Path(p).as_posix() for p in only} if only is not None else None
    found = [(p, c) for p, c in _candidates(root, source, parsed) if wanted is None or p.relative_to(root).as_posix()
             in wanted]
    checked = read_verdicts(verdicts, root) if verdicts is not None else {}

    def one(item: tuple[Path, list[str]]) -> dict:
        path, classes = item
        rel = path.relative_to(root).as_posix()
        row: dict = {"path": rel, "classes": classes, "parsed": bool(classes)}
        if load:
            result = _probe(path, root, classes, timeout)
            row["category"], row["status"] = classify(result, root, path.parent)
            row["seconds"] = result.get("seconds")
            row["abstract_at_runtime"] = result.get("abstract")
        else:
            row["category"], row["status"], row["seconds"], row["abstract_at_runtime"] = None, "not checked", None, None
        facts: dict[str, set[str]] = {}
        scanned = source.scope(path) if classes else [path]
        for file in scanned:
            if (tree := source.tree(file)) is not None:
                for key, values in _facts(tree).items():
                    facts.setdefault(key, set()).update(values)
        row["scanned"] = [f.relative_to(root).as_posix() for f in scanned]
        row["needs"] = {k: sorted(facts.get(k, ())) for k in ("keys", "data", "services", "gpu")}
        row["calls"] = sorted(facts.get("calls", ()), key=_call_order)
        row["max_token_length"] = sorted(facts.get("max_token_length", ())) or ["not used"]
        row["unimplemented"], row["unresolved_bases"] = {}, []
        tree = parsed.module(path)
        for cls in tree.classes if tree is not None else []:
            if cls.name in classes and parsed.is_env(path, cls):
                missing, unresolved = classes_of.unimplemented(path, cls)
                if missing:  # a base outside the checkout (a mixin) might define them
                    row["unimplemented"][cls.name] = missing
                    row["unresolved_bases"] += [b for b in unresolved if b not in row["unresolved_bases"]]
        row["verdict"] = "; ".join(checked.get(rel, [])) or "not checked"
        return row

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, found))


def _call_order(call: str) -> tuple[int, str]:
    marker = call.strip(".(")
    return (SERVER_CALLS.index(marker), call) if marker in SERVER_CALLS else (len(SERVER_CALLS), call)


# -- rendering ---------------------------------------------------------------------------------------------------------
def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or "–"


def _needs_cell(needs: dict[str, list[str]]) -> str:
    labels = {"keys": "keys", "data": "data", "services": "services", "gpu": "GPU"}
    return "; ".join(f"{labels[k]}: {', '.join(v)}" for k, v in needs.items() if v)


def _counts(title: str, counter: Counter, order: Iterable[str] = ()) -> list[str]:
    keys = [k for k in order if counter.get(k)] + sorted(k for k in counter if k not in set(order))
    return [f"| {title} | environments |", "|---|---:|", *(f"| {_cell(k)} | {counter[k]} |" for k in keys), ""]


def render(rows: list[dict], *, command: str | None = None, commit: str | None = None, date: str | None = None) -> str:
    """The Markdown page: how it was made, counts, then one line per environment file."""
    out = ["# Atropos environments: compatibility", ""]
    out.append("Generated; do not edit by hand. Regenerate with the command below.")
    out.append("")
    if command:
        out.append(f"- Command: `{command}`")
    out.append(f"- Atropos checkout commit: {commit or 'unknown (not a git repository)'}")
    out.append(f"- atroposlib used for the import check: {_library_version()}; Python {sys.version.split()[0]}")
    out.append(f"- Date: {date or datetime.date.today().isoformat()}")
    out.append(f"- Environment files: {len(rows)}")
    out.append("")
    out.append("## Summary")
    out.append("")
    categories = Counter(r["category"] or "not checked" for r in rows)
    out += _counts("Import check", categories, (*CATEGORIES, "not checked"))
    missing = Counter(r["status"].removeprefix("missing package: ") for r in rows if r["category"] == "missing package")
    if missing:
        out += _counts("Missing package", missing)
    # one verdict a row (a cause may itself hold "; " and ":"), counted by its first word: pass / fail / not checked
    verdicts = Counter(r["verdict"].split(":", 1)[0] for r in rows)
    out += _counts("`envs check` verdict", verdicts, ("pass", "fail", "not checked"))
    features = Counter()
    for r in rows:
        for key, label in (("keys", "API key or own client"), ("data", "downloads data"),
                           ("services", "external service"), ("gpu", "GPU-only package")):
            features[label] += bool(r["needs"][key])
        features["calls managed_server("] += "managed_server(" in r["calls"] or "ManagedServer(" in r["calls"]
        features["leaves an abstract method unimplemented"] += bool(r["unimplemented"])
    out += _counts("Needs and calls", features)
    out.append("## Environments")
    out.append("")
    out.append("Columns: *Import* is the result of importing the file in a fresh offline process from the checkout "
               "root. *Needs*, *Calls* and *max_token_length* are read from the source of the file and of the "
               "checkout modules it imports. *Unimplemented* lists `evaluate`/`get_next_item` that neither the class "
               "nor its checkout bases define (instantiating such a class fails).")
    out.append("")
    out.append("| File | Classes | Import | Needs | Calls | max_token_length | Unimplemented | envs check |")
    out.append("|---|---|---|---|---|---|---|---|")
    for r in rows:
        classes = ", ".join(r["classes"]) if r["parsed"] else "(does not parse)"
        missing = "; ".join(f"{c}: {', '.join(m)}" for c, m in r["unimplemented"].items())
        if r["unresolved_bases"]:
            outside = f"bases outside the checkout: {', '.join(r['unresolved_bases'])}"
            missing = "; ".join(filter(None, [missing, outside]))
        calls = ", ".join(f"`{c}`" for c in r["calls"])
        cells = [f"`{r['path']}`", classes, r["status"], _needs_cell(r["needs"]), calls,
                 ", ".join(r["max_token_length"]), missing, r["verdict"]]
        out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    out.append("")
    return "\n".join(out)


def _library_version() -> str:
    try:
        return f"{LIBRARY} {version(LIBRARY)}"
    except PackageNotFoundError:
        return f"{LIBRARY} (not installed)"


def git_commit(checkout: Path) -> str | None:
    """HEAD of the checkout's own repository; None when it is not one (a folder inside another repository, such as a
    test fixture, would otherwise report that repository's commit)."""
    try:
        done = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--show-toplevel", "HEAD"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stdout.split()
    if done.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != Path(checkout).resolve():
        return None
    return lines[1]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="an Atropos checkout (the folder holding environments/)")
    parser.add_argument("--out", type=Path, default=Path("docs/compatibility.md"))
    parser.add_argument("--verdicts", type=Path, help="folder of `atropos-verl envs check ... --json FILE` results")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for each file's import check")
    parser.add_argument("--jobs", type=int, default=1, help="import checks run at once")
    args = parser.parse_args(argv)
    start = time.monotonic()
    found = rows(args.checkout, timeout=args.timeout, jobs=args.jobs, verdicts=args.verdicts)
    command = shlex.join([".venv/bin/python", "scripts/atropos_compat.py", *argv])
    page = render(found, command=command, commit=git_commit(args.checkout), date=datetime.date.today().isoformat())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page, encoding="utf-8")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")
    counts = Counter(r["category"] for r in found)
    print(f"{len(found)} environment files in {time.monotonic() - start:.0f} s: {dict(counts)}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
