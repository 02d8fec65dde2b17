"""The `atropos-verl` command line."""

import typer

app = typer.Typer(no_args_is_help=True, help="Train verl GRPO on Atropos environments.")


@app.command()
def version() -> None:
    """Print the package version and the pinned verl/atroposlib versions."""
    from importlib.metadata import version as v

    import atropos_verl

    typer.echo(f"atropos-verl {atropos_verl.__version__} (verl {v('verl')}, atroposlib {v('atroposlib')})")
