"""``stepline workflows``: list, describe, delete and trigger workflows (wrangler's commands)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from stepline.cli.arguments import WorkflowName, parse_json_argument
from stepline.cli.options import (
    DEFAULT_API_URL,
    AccountIdOption,
    ApiUrlOption,
    JsonOption,
    TokenOption,
    connect,
)
from stepline.cli.output import (
    format_time,
    out_console,
    print_json,
    report_errors,
    say,
    warn,
    workflows_table,
)
from stepline.client.http import HttpClient
from stepline.durations import format_duration_ms

__all__ = ["app"]

app = typer.Typer(
    help="Manage workflows: list, describe, delete, and trigger new instances.",
    no_args_is_help=True,
)


def _newest_first(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Fixed-width UTC ISO strings sort as times do (clients.md Q10), as wrangler relies on.
    return sorted(items, key=lambda item: str(item.get("created_on") or ""), reverse=True)


@app.command(
    "list",
    epilog="Example:\n\n  stepline workflows list --page 2 --per-page 20",
)
def list_workflows(
    page: Annotated[int, typer.Option(min=1, help="Page number to show.")] = 1,
    per_page: Annotated[int, typer.Option(min=1, max=100, help="Workflows per page.")] = 10,
    api_url: ApiUrlOption = DEFAULT_API_URL,
    token: TokenOption = None,
    account_id: AccountIdOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the workflows of the account, newest first on each page.

    Pages go by name, as wrangler's do: a newer workflow may be on a later page.
    """
    with report_errors():
        connection = connect(api_url, token, account_id)
        result = connection.run(
            lambda client: client.list_workflows(
                connection.account_id, page=page, per_page=per_page
            )
        )
    workflows = _newest_first(result.items)
    if as_json:
        print_json(workflows)
        return
    if not workflows:
        warn(f"No workflows found on page {page}.")
        return
    noun = "workflow" if len(workflows) == 1 else "workflows"
    console = out_console()
    console.print(f"Showing {len(workflows)} {noun} from page {page}:")
    console.print(workflows_table(workflows))


async def _workflow_with_latest_version(
    client: HttpClient, account_id: str, name: str
) -> dict[str, Any]:
    workflow = await client.get_workflow(account_id, name)
    versions = await client.list_versions(account_id, name)
    newest = _newest_first(versions.items)
    return {**workflow, "latest_version": newest[0] if newest else None}


def _settings(version: dict[str, Any]) -> list[tuple[str, str]]:
    """A version's limits, concurrency and default retention, as the describe view shows them."""
    rows = []
    steps = (version.get("limits") or {}).get("steps")
    if steps is not None:
        rows.append(("Step Limit", f"{steps:,}"))
    concurrency = (version.get("concurrency") or {}).get("limit")
    if concurrency is not None:
        rows.append(("Concurrency", f"at most {concurrency:,} running"))
    retention = version.get("default_retention") or {}
    for key, label in (("success_retention", "complete"), ("error_retention", "errored")):
        if retention.get(key) is not None:
            value = retention[key]
            whole = isinstance(value, int) and not isinstance(value, bool)
            shown = format_duration_ms(value) if whole else str(value)
            rows.append((f"Keeps {label}", shown))
    return rows


@app.command(
    "describe",
    epilog="Example:\n\n  stepline workflows describe checkout",
)
def describe_workflow(
    name: WorkflowName,
    api_url: ApiUrlOption = DEFAULT_API_URL,
    token: TokenOption = None,
    account_id: AccountIdOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a workflow, its instance counts and its latest version."""
    with report_errors():
        connection = connect(api_url, token, account_id)
        workflow = connection.run(
            lambda client: _workflow_with_latest_version(client, connection.account_id, name)
        )
    if as_json:
        print_json(workflow)
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for label, key in (("Name", "name"), ("Id", "id"), ("Script Name", "script_name")):
        grid.add_row(label, Text(str(workflow.get(key, "-"))))
    grid.add_row("Class Name", Text(str(workflow.get("class_name", "-"))))
    grid.add_row("Created On", format_time(workflow.get("created_on")))
    grid.add_row("Modified On", format_time(workflow.get("modified_on")))
    grid.add_row("Last Triggered", format_time(workflow.get("triggered_on")))
    counts = workflow.get("instances")
    if isinstance(counts, dict):
        summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n) or "none"
        grid.add_row("Instances", summary)
    for n, schedule in enumerate(workflow.get("schedules") or []):
        when = format_time(schedule.get("next_instance"))
        grid.add_row("Schedules" if n == 0 else "", Text(f"{schedule.get('cron')}  next ") + when)
    latest = workflow.get("latest_version")
    if isinstance(latest, dict):
        grid.add_row("Latest Version", Text(str(latest.get("id", "-"))))
        grid.add_row("  Created On", format_time(latest.get("created_on")))
        if latest.get("language"):
            grid.add_row("  Language", str(latest["language"]))
        for label, value in _settings(latest):
            grid.add_row(f"  {label}", Text(value))
    else:
        grid.add_row("Latest Version", "-")
    out_console().print(grid)


@app.command(
    "delete",
    epilog="Example:\n\n  stepline workflows delete checkout",
)
def delete_workflow(
    name: WorkflowName,
    api_url: ApiUrlOption = DEFAULT_API_URL,
    token: TokenOption = None,
    account_id: AccountIdOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete a workflow and all of its instances (running ones are stopped)."""
    with report_errors():
        connection = connect(api_url, token, account_id)
        result = connection.run(lambda client: client.delete_workflow(connection.account_id, name))
    if as_json:
        print_json(result)
        return
    say(
        f'✅ Workflow "{name}" removed successfully.\n'
        " Note that running instances might take a few moments to be terminated."
    )


@app.command(
    "trigger",
    epilog=(
        "Examples:\n\n"
        '  stepline workflows trigger checkout \'{"cart_id": "c_42"}\'\n\n'
        '  stepline workflows trigger checkout \'{"cart_id": "c_42"}\' --id order-42'
    ),
)
def trigger_workflow(
    name: WorkflowName,
    params: Annotated[
        str | None,
        typer.Argument(help="The instance's params, as JSON.", show_default=False),
    ] = None,
    instance_id: Annotated[
        str | None,
        typer.Option("--id", help="Id for the new instance (default: a random UUID)."),
    ] = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
    token: TokenOption = None,
    account_id: AccountIdOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a new instance of a workflow."""
    with report_errors():
        parsed = parse_json_argument(params, what="PARAMS") if params else None
        connection = connect(api_url, token, account_id)
        result = connection.run(
            lambda client: client.create_instance(
                connection.account_id, name, instance_id=instance_id, params=parsed
            )
        )
    if as_json:
        print_json(result)
        return
    say(f'🚀 Workflow instance "{result.get("id")}" has been queued successfully')
