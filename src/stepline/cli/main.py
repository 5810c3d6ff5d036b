"""The ``stepline`` command: the root Typer app and its sub-apps.

Command groups live in their own modules and are attached here. A command defined elsewhere
joins the root app in two lines, for example a ``serve`` command written as a plain function
with Typer-annotated parameters in ``stepline/cli/serve.py``::

    from stepline.cli.serve import serve_command
    app.command("serve", epilog="Example:\\n\\n  stepline serve --port 8787")(serve_command)

and a group of commands (a ``typer.Typer`` of its own) in one::

    app.add_typer(tokens_app, name="tokens")

Errors a user can cause are reported by :func:`stepline.cli.output.report_errors` as one line
on stderr with exit status 1; new commands should wrap their work in it the same way (with
``local=True`` when the command runs Stepline itself rather than asking a server).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from stepline.cli import instances, tokens, workflows
from stepline.cli.migrate import MIGRATE_EPILOG, migrate_command
from stepline.cli.serve import SERVE_EPILOG, serve_command
from stepline.cli.worker import WORKER_EPILOG, worker_command

__all__ = ["app", "main"]

app = typer.Typer(
    name="stepline",
    help=(
        "Stepline: durable workflows with the Cloudflare Workflows API.\n\n"
        "The workflows and instances commands mirror [bold]wrangler workflows[/bold] and talk "
        "to a Stepline server (or Cloudflare) over its v4 REST API."
    ),
    epilog=(
        "Examples:\n\n"
        "  export STEPLINE_ACCOUNT_ID=local STEPLINE_API_TOKEN=...\n\n"
        "  stepline workflows list\n\n"
        "  stepline instances describe checkout latest --watch"
    ),
    no_args_is_help=True,
    # A user error is one line; a traceback is for Stepline's own bugs, and then the plain
    # one is easier to paste into an issue than a boxed one.
    pretty_exceptions_enable=False,
)
app.command("serve", epilog=SERVE_EPILOG)(serve_command)
app.command("worker", epilog=WORKER_EPILOG)(worker_command)
app.command("migrate", epilog=MIGRATE_EPILOG)(migrate_command)
app.add_typer(tokens.app, name="tokens")
app.add_typer(workflows.app, name="workflows")
app.add_typer(instances.app, name="instances")
# wrangler spells it `wrangler workflows instances ...`; accept that muscle memory too.
workflows.app.add_typer(instances.app, name="instances", hidden=True)


def _print_version(requested: bool) -> None:
    if requested:
        try:
            typer.echo(f"stepline {version('stepline')}")
        except PackageNotFoundError:
            typer.echo("stepline (not installed as a package)")
        raise typer.Exit()


@app.callback()
def root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Options that apply before any command."""


def main() -> None:
    """The console-script entry point declared in pyproject.toml."""
    app(prog_name="stepline")
