"""The `atropos-verl` command line."""

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="Train verl GRPO on Atropos environments.")


@app.command()
def version() -> None:
    """Print the package version and the pinned verl/atroposlib versions."""
    from importlib.metadata import version as v

    import atropos_verl

    typer.echo(f"atropos-verl {atropos_verl.__version__} (verl {v('verl')}, atroposlib {v('atroposlib')})")


@app.command("tiny-model")
def tiny_model(
    out_dir: Annotated[Path, typer.Argument(help="Directory for the model, tokenizer and generation config.")],
    seed: Annotated[int, typer.Option(help="Weight-init seed; the same seed gives byte-identical files.")] = 0,
    hidden_size: int = 128,
    intermediate_size: int = 512,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 4,
    max_position_embeddings: int = 128,
    tie_word_embeddings: bool = True,
    num_merges: Annotated[int, typer.Option(help="BPE merges learned from the built-in ChatML corpus.")] = 60,
) -> None:
    """Build the offline tiny Qwen2 model and byte-level BPE tokenizer (defaults: the CPU demo recipe)."""
    from atropos_verl.models.tiny import build_tiny_model, count_parameters

    path = build_tiny_model(
        out_dir,
        seed=seed,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_word_embeddings,
        num_merges=num_merges,
    )
    typer.echo(str(path))
    typer.echo(f"parameters: {count_parameters(path):,}")


envs_app = typer.Typer(no_args_is_help=True, help="Atropos environments this installation can run.")
app.add_typer(envs_app, name="envs")


@envs_app.command("list")
def envs_list(
    checkout: Annotated[
        Path | None, typer.Option(help="An Atropos checkout whose environments/ to scan (parsed, not imported).")
    ] = None,
) -> None:
    """List builtin, installed and checkout environments, whether each uses the token-level path, and the verdict of
    its last `envs check` on this machine."""
    from rich.console import Console
    from rich.table import Table

    from atropos_verl.launch.envs_list import list_envs

    try:
        entries = list_envs(checkout)
    except FileNotFoundError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    from atropos_verl.launch.envs_list import last_check

    table = Table("name", "source", "where", "generation", "last check")
    for e in entries:
        table.add_row(e.name, e.source, e.location, e.path, last_check(e))
    Console(width=200).print(table)


@envs_app.command("check")
def envs_check(
    env: Annotated[str, typer.Argument(help="A builtin name, a module (pkg.mod[:Class]) or a .py file (relative to "
                                       "--checkout).")],
    checkout: Annotated[Path | None, typer.Option(help="The Atropos checkout the environment comes from.")] = None,
    groups: Annotated[int, typer.Option(min=1, help="Groups to train one step on.")] = 2,
    model: Annotated[str | None, typer.Option(help="Model to serve and train (default: the tiny model, built "
                                              "offline).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write every stage as JSON here.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds the run may wait for its groups.")] = 120.0,
    token_budget: Annotated[str, typer.Option(help="How it reads max_token_length: response or total.")] = "response",
    workdir: Annotated[Path | None, typer.Option(help="Where the check's run writes (default: a temporary "
                                                 "directory, removed after a pass).")] = None,
) -> None:
    """Does ENV train with verl? Runs it, unmodified, against the stack a run uses for one training step and reports
    each stage; exit 0 on pass, 1 on fail."""
    import logging
    import shutil
    import tempfile

    from atropos_verl.errors import ConfigError
    from atropos_verl.host_detect import host_has_accelerator
    from atropos_verl.launch.envs_check import check_environment, save_result

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    temporary = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="atropos-verl-envcheck-")) if workdir is None else workdir
    try:
        result = check_environment(env, checkout=checkout.resolve() if checkout else None, groups=groups,
                                   model=model, timeout=timeout, workdir=workdir,
                                   has_accelerator=host_has_accelerator(), token_budget=token_budget)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"envs check {result.target} ({result.seconds:.0f} s)")
    for stage in result.stages:
        mark = {True: "pass", False: "FAIL", None: " -- "}[stage.ok]
        typer.echo(f"  {mark}  {stage.name:<24} {stage.detail}")
    if result.verdict == "pass":
        typer.echo(f"PASS: {env} trains with verl")
    else:
        typer.echo(f"FAIL: {result.cause}\n  fix: {result.fix}")
        if result.run_dir:
            typer.echo(f"  run dir: {result.run_dir}")
    save_result(result)
    if json_out is not None:
        json_out.write_text(json.dumps(result.to_json(), indent=1))
    if temporary and result.verdict == "pass":
        shutil.rmtree(workdir, ignore_errors=True)
    raise typer.Exit(0 if result.verdict == "pass" else 1)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    ctx: typer.Context,
    config: Annotated[Path, typer.Argument(help="Run config YAML (see configs/).")],
    live: Annotated[bool | None, typer.Option("--live/--plain", help="Rich live view or plain lines.")] = None,
    trainer_module: Annotated[str, typer.Option(help="Module run as `python -m` for the trainer, e.g. the verl "
                                                "recipe's recipe.atropos.main_atropos.")] = "atropos_verl.trainer.main",
) -> None:
    """Start the Atropos API, verl (servers + trainer) and the environments; supervise until the trainer ends.

    Everything after `--` is passed to the trainer as Hydra overrides, verbatim.
    """
    import logging

    from atropos_verl.errors import ConfigError
    from atropos_verl.launch.preflight import preflight

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per health probe would bury the run's own lines
    try:
        env_check = preflight(config)  # before the stack's imports: a bad config or environment fails in seconds
        try:
            from atropos_verl.host_detect import host_has_accelerator
            from atropos_verl.launch.run import run as run_stack
        except BaseException:
            env_check.cancel()
            raise
        result = run_stack(config, list(ctx.args), has_accelerator=host_has_accelerator(), live=live,
                           env_check=env_check, trainer_module=trainer_module)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(result.exit_code)


def _print_patches() -> None:
    """The registry of changes made to third-party packages, with whether each target still exists here."""
    from atropos_verl.patches import PATCHES, target_state

    for p in PATCHES:
        typer.echo(f"{p.id}  [target {target_state(p)}]")
        for label, value in (("target", p.target), ("how", p.mechanism), ("applied by", p.applied_by),
                             ("where", f"{p.process}; {p.when}"), ("why", p.why), ("upstream", p.upstream),
                             ("checked by", p.test)):
            typer.echo(f"    {label:<11}{value}")
    typer.echo(f"{len(PATCHES)} patches (atropos_verl/patches.py)")


@app.command()
def doctor(
    config: Annotated[Path | None, typer.Argument(help="Run config YAML to check against.")] = None,
    patches: Annotated[bool, typer.Option("--patches", help="List every patch applied to verl, vLLM, "
                                          "atroposlib and others, and why.")] = False,
    smoke: Annotated[bool, typer.Option("--smoke", help="Run two steps of CONFIG's stack (engine, mode, placement, "
                                        "device layout, LoRA) with a tiny model and report each mechanism.")] = False,
    workdir: Annotated[Path | None, typer.Option(help="Where the smoke run writes (default: a temporary "
                                                 "directory, removed after a pass).")] = None,
) -> None:
    """Check the installation, and a running stack when CONFIG's run is up. Exits 1 if any check fails."""
    from rich.console import Console
    from rich.table import Table

    if patches:
        _print_patches()
        raise typer.Exit(0)
    if smoke:
        if config is None:
            typer.echo("error: --smoke needs a run config", err=True)
            raise typer.Exit(2)
        raise typer.Exit(_smoke(config, workdir))

    from atropos_verl.errors import ConfigError
    from atropos_verl.launch.config import load_run_config
    from atropos_verl.launch.doctor import run_doctor

    try:
        cfg = load_run_config(config) if config else None
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    checks = run_doctor(cfg)
    table = Table("check", "result", "detail", "hint")
    for c in checks:
        table.add_row(c.name, "[green]pass[/]" if c.ok else "[red]FAIL[/]", c.detail, "" if c.ok else c.hint)
    Console(width=200).print(table)
    failed = [c for c in checks if not c.ok]
    typer.echo(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
    raise typer.Exit(1 if failed else 0)


def _smoke(config_path: Path, workdir: Path | None) -> int:
    """`doctor CONFIG --smoke`: the smoke run under the launcher, then one verdict per mechanism."""
    import logging
    import shutil
    import tempfile

    from atropos_verl.errors import ConfigError
    from atropos_verl.host_detect import host_has_accelerator
    from atropos_verl.launch.config import load_run_config
    from atropos_verl.launch.run import run as run_stack
    from atropos_verl.launch.smoke import verdicts, write_smoke_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    accelerator = host_has_accelerator()
    temporary = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="atropos-verl-smoke-")) if workdir is None else workdir
    try:
        config = load_run_config(config_path)
        smoke_path = write_smoke_config(config, workdir, has_accelerator=accelerator)
        result = run_stack(smoke_path, [], has_accelerator=accelerator, live=False)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    checks = verdicts(result.run_dir, result.exit_code, result.reason, result.servers, mode=config.mode)
    typer.echo(f"smoke run of {config_path} ({config.backend} backend requested, {config.mode} mode, "
               f"{config.placement} placement, {'GPU' if accelerator else 'CPU'} host): {smoke_path}")
    for c in checks:
        typer.echo(f"  {'pass' if c.ok else 'FAIL'}  {c.name:<13} {c.detail}")
    failed = [c.name for c in checks if not c.ok]
    typer.echo(f"smoke: {'pass' if not failed else 'FAIL (' + ', '.join(failed) + ')'}; run dir {result.run_dir}")
    if temporary and not failed:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0
