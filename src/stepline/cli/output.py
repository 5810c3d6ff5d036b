"""How the CLI speaks: JSON, Rich tables, status labels, times, and one-line errors.

Results go to stdout, everything else (errors, warnings, progress) to stderr, so
``stepline ... --json | jq`` always sees clean JSON. Text that came from the server is printed
as plain :class:`rich.text.Text`, never parsed as Rich markup.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from stepline.client.http import MalformedResponse, ServerUnreachable
from stepline.errors import ApiError, ConfigError, MissingCredentials

__all__ = [
    "FINISHED_STATUSES",
    "USER_ERRORS",
    "UserError",
    "err_console",
    "error_line",
    "format_duration",
    "format_time",
    "instances_table",
    "out_console",
    "parse_time",
    "print_json",
    "report_errors",
    "say",
    "status_label",
    "trigger_label",
    "warn",
    "workflows_table",
]

FINISHED_STATUSES = frozenset({"complete", "errored", "terminated"})

# The same words and symbols wrangler prints, so output reads the same in both tools.
_STATUS_LABELS: dict[str, tuple[str, str]] = {
    "queued": ("⌛ Queued", "cyan"),
    "running": ("▶ Running", "blue"),
    "paused": ("⏸️ Paused", "yellow"),
    "errored": ("❌ Errored", "red"),
    "terminated": ("🚫 Terminated", "magenta"),
    "complete": ("✅ Completed", "green"),
    "waiting": ("⏰ Waiting", "cyan"),
    "waitingForPause": ("⏱️ Waiting for pause", "yellow"),
    "rollingBack": ("↩️ Rolling back", "yellow"),
}
_TRIGGER_LABELS = {
    "api": "🌎 API",
    "binding": "🔗 Binding",
    "cron": "⏰ Cron",
    "event": "📨 Event",
    "unknown": "❓ Unknown",
}


class UserError(Exception):
    """A mistake in what the user typed or supplied; printed as one line, exit status 1."""


PIPED_WIDTH = 240
"""Columns to lay out for when the output is not a terminal and ``COLUMNS`` is not set.

Rich would assume 80, which folds instance ids and splits timestamps across lines in
``stepline ... | grep`` or a captured log; tables still take only the width they need."""


class _PipeFriendlyConsole(Console):
    """A console that, when not writing to a terminal, ends no line with spaces.

    Rich pads table and grid cells to their column's width; on a screen that is invisible,
    but in a file, a diff or a pasted snippet it is noise.
    """

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if self.is_terminal:
            super().print(*objects, **kwargs)
            return
        with self.capture() as captured:
            super().print(*objects, **kwargs)
        text = captured.get()
        trimmed = "\n".join(line.rstrip(" ") for line in text.split("\n"))
        self.file.write(trimmed)
        self.file.flush()


def _console(*, stderr: bool = False, soft_wrap: bool = False) -> Console:
    console = _PipeFriendlyConsole(stderr=stderr, highlight=False, emoji=False, soft_wrap=soft_wrap)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = PIPED_WIDTH
    return console


def out_console() -> Console:
    # Built per call: the stream is looked up when printing, which keeps test runners that
    # swap sys.stdout working.
    return _console()


def err_console() -> Console:
    return _console(stderr=True, soft_wrap=True)


def print_json(value: Any) -> None:
    """Print a result as indented JSON (wrangler indents by four), unwrapped by Rich."""
    typer.echo(json.dumps(value, indent=4, ensure_ascii=False))


def say(message: str) -> None:
    """Print a one-sentence result as it is: no markup (ids and names are data), no wrapping."""
    out_console().print(message, markup=False, soft_wrap=True)


def warn(message: str) -> None:
    err_console().print(Text.assemble(("▲ warning: ", "yellow bold"), message))


def error_line(exc: BaseException, *, local: bool = False) -> Text:
    """``error: <message> [code: N] – <detail>``: how every failure the user can fix is shown.

    ``local``: Stepline runs in this process (``serve``, ``worker``, ``tokens``), so an API
    error was raised here, not answered by a server; its label and code, which identify an
    answer in the REST envelope, would only hide its sentence (``error: <detail>``).
    """
    line = Text("error: ", style="red bold")
    if local and isinstance(exc, ApiError):
        line.append(exc.detail or exc.message)
    elif isinstance(exc, ApiError):
        line.append(f"{exc.message} [code: {exc.code}]")
        if exc.detail:
            line.append(f" \u2013 {exc.detail}")
        elif exc.code == MissingCredentials.code:  # the server saw no token at all
            line.append(f" \u2013 {_NO_TOKEN}")
    elif isinstance(exc, MalformedResponse):
        line.append(f"received a malformed response from the API: {exc}")
    else:
        line.append(str(exc))
    return line


_NO_TOKEN = "no token was sent: pass --token or set STEPLINE_API_TOKEN (or CLOUDFLARE_API_TOKEN)"

USER_ERRORS = (ApiError, ConfigError, ServerUnreachable, MalformedResponse, UserError)
"""What :func:`report_errors` shows as one line; anything else is a bug and keeps its traceback."""


@contextmanager
def report_errors(*, local: bool = False) -> Iterator[None]:
    """Turn the errors a user can cause or fix into one line on stderr and exit status 1.
    ``local``: for a command that runs Stepline itself rather than asking a server (see
    :func:`error_line`).

    Anything else is a bug in Stepline and keeps its traceback.
    """
    try:
        yield
    except USER_ERRORS as exc:
        err_console().print(error_line(exc, local=local))
        raise typer.Exit(1) from None


# --- values ------------------------------------------------------------------------------


def parse_time(value: object) -> datetime | None:
    """An ISO-8601 timestamp from the API as an aware datetime; ``None`` when absent or odd."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def format_time(value: object) -> str:
    """A timestamp in the reader's local time zone, to the second."""
    parsed = parse_time(value)
    if parsed is None:
        return "-"
    return parsed.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def format_duration(milliseconds: float) -> str:
    """A short human duration: ``850ms``, ``4.2s``, ``3m 05s``, ``2h 03m``, ``3d 04h``."""
    ms = max(0.0, milliseconds)
    if ms < 1000:
        return f"{ms:.0f}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def status_label(status: object) -> Text:
    label, style = _STATUS_LABELS.get(str(status), (f"❓ {status}", "white"))
    return Text(label, style=style)


def trigger_label(source: object) -> str:
    return _TRIGGER_LABELS.get(str(source), str(source))


def _cell(value: object) -> Text:
    return Text("-" if value is None else str(value))


# --- tables ------------------------------------------------------------------------------


def _instance_counts(counts: object) -> Text:
    if not isinstance(counts, Mapping):
        return Text("-")
    parts = [f"{n} {status}" for status, n in counts.items() if isinstance(n, int) and n]
    return Text(", ".join(parts) if parts else "none")


def workflows_table(workflows: list[dict[str, Any]]) -> Table:
    table = Table(box=box.ROUNDED, header_style="bold")
    for column in ("Name", "Script name", "Class name", "Created", "Modified", "Instances"):
        # Names are what the next command is given: fold them rather than cut them short.
        folded = column in ("Name", "Script name", "Class name")
        table.add_column(column, overflow="fold" if folded else "ellipsis")
    for workflow in workflows:
        table.add_row(
            _cell(workflow.get("name")),
            _cell(workflow.get("script_name")),
            _cell(workflow.get("class_name")),
            format_time(workflow.get("created_on")),
            format_time(workflow.get("modified_on")),
            _instance_counts(workflow.get("instances")),
        )
    return table


def instances_table(instances: list[dict[str, Any]]) -> Table:
    table = Table(box=box.ROUNDED, header_style="bold")
    for column in ("Instance ID", "Version", "Created", "Modified", "Status"):
        # Ids are what people copy from this table: fold them rather than cut them short.
        folded = column in ("Instance ID", "Version")
        table.add_column(column, overflow="fold" if folded else "ellipsis")
    for instance in instances:
        table.add_row(
            _cell(instance.get("id")),
            _cell(instance.get("version_id")),
            format_time(instance.get("created_on")),
            format_time(instance.get("modified_on")),
            status_label(instance.get("status")),
        )
    return table
