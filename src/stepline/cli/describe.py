"""``instances describe``: one instance's header and step timeline, once or until it finishes.

Registered on the ``instances`` app by :mod:`stepline.cli.instances`.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from rich.live import Live

from stepline.cli.arguments import LATEST, InstanceId, WorkflowName, resolve_instance_id
from stepline.cli.options import (
    DEFAULT_API_URL,
    AccountIdOption,
    ApiUrlOption,
    JsonOption,
    TokenOption,
    connect,
)
from stepline.cli.output import FINISHED_STATUSES, out_console, print_json, report_errors
from stepline.cli.timeline import render_instance
from stepline.client.http import HttpClient

__all__ = ["describe_instance"]


async def _watch_until_finished(
    client: HttpClient,
    account_id: str,
    name: str,
    instance_id: str,
    *,
    interval: float,
    redraw: Live | None,
    show_output: bool,
    output_limit: int,
) -> dict[str, Any]:
    """Poll an instance, redrawing the screen each time, until it is complete/errored/terminated."""
    while True:
        details = await client.describe_instance(account_id, name, instance_id)
        if redraw is not None:
            screen = render_instance(
                name, instance_id, details, show_output=show_output, output_limit=output_limit
            )
            redraw.update(screen, refresh=True)
        if details.get("status") in FINISHED_STATUSES:
            return details
        await asyncio.sleep(interval)


def describe_instance(
    name: WorkflowName,
    instance_id: InstanceId = LATEST,
    step_output: Annotated[
        bool,
        typer.Option(
            "--step-output/--no-step-output",
            help="Show each step's output.",
            rich_help_panel="Step output",
        ),
    ] = True,
    truncate_output_limit: Annotated[
        int,
        typer.Option(
            min=0,
            metavar="CHARS",
            help="Cut outputs longer than this many characters (0: never).",
        ),
    ] = 5000,
    watch: Annotated[
        bool, typer.Option("--watch", help="Keep redrawing until the instance has finished.")
    ] = False,
    interval: Annotated[
        float, typer.Option(min=0.1, metavar="SECONDS", help="Seconds between polls with --watch.")
    ] = 1.0,
    api_url: ApiUrlOption = DEFAULT_API_URL,
    token: TokenOption = None,
    account_id: AccountIdOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show an instance: status, times, error and the timeline of its steps."""
    console = out_console()

    async def describe(client: HttpClient) -> tuple[str, dict[str, Any]]:
        target = await resolve_instance_id(client, connection.account_id, name, instance_id)
        if not watch:
            return target, await client.describe_instance(connection.account_id, name, target)

        async def poll(redraw: Live | None) -> dict[str, Any]:
            return await _watch_until_finished(
                client,
                connection.account_id,
                name,
                target,
                interval=interval,
                redraw=redraw,
                show_output=step_output,
                output_limit=truncate_output_limit,
            )

        # With --json, or into a file or pipe (nothing to redraw, and rich's live view leaves
        # its last line unended there), only the final state is printed; otherwise the screen
        # is redrawn live.
        if as_json or not console.is_terminal:
            return target, await poll(None)
        with Live(console=console, auto_refresh=False) as live:
            return target, await poll(live)

    with report_errors():
        connection = connect(api_url, token, account_id)
        try:
            target, details = connection.run(describe)
        except KeyboardInterrupt:
            # Ctrl-C is how one stops watching: leave the last screen as it is, say nothing.
            raise typer.Exit(130) from None
    if as_json:
        print_json(details)
    elif not watch or not console.is_terminal:
        screen = render_instance(
            name, target, details, show_output=step_output, output_limit=truncate_output_limit
        )
        console.print(screen)
