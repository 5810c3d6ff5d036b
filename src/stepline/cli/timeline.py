"""``instances describe``: an instance's header and the timeline of its steps, as Rich renderables.

The step logs are the REST shapes of spec §1.3 (8): ``step``/``rollback`` with attempts,
``sleep``, ``waitForEvent`` and ``termination``. Rendering is a pure function of the details
and the current time, so ``--watch`` can redraw it on every poll.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from stepline.cli.output import (
    format_duration,
    format_time,
    parse_time,
    status_label,
    trigger_label,
)

__all__ = ["render_instance", "step_status", "truncate"]

_STEP_TYPE_LABELS = {
    "step": "🎯 Step",
    "rollback": "↩️ Rollback",
    "sleep": "💤 Sleep",
    "waitForEvent": "👀 Wait for event",
    "termination": "🚫 Termination",
}
_STATUS_STYLES = {
    "complete": "green",
    "errored": "red",
    "timed out": "red",
    "retrying": "yellow",
    "running": "blue",
    "sleeping": "cyan",
    "waiting": "cyan",
    "terminated": "magenta",
    "stopped": "magenta",
}


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters and say so; a limit of 0 keeps everything."""
    if limit <= 0 or len(text) <= limit:
        return text
    return f"{text[:limit]}… [truncated {len(text) - limit} characters]"


def _as_text(value: Any) -> str:
    # Cloudflare stores step outputs as JSON strings already; show those as they are.
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _error_text(error: object) -> str:
    if isinstance(error, dict):
        name, message = error.get("name"), error.get("message")
        return f"{name}: {message}" if name and message else str(message or name or error)
    return str(error)


def step_status(step: dict[str, Any]) -> str:
    """The one word a reader wants about a step: complete, running, retrying, errored…"""
    kind = step.get("type")
    if kind in ("step", "rollback"):
        if step.get("success") is True:
            return "complete"
        if step.get("success") is False:
            return "errored"
        attempts = step.get("attempts") or []
        failed_last = bool(attempts) and attempts[-1].get("success") is False
        return "retrying" if failed_last else "running"
    if kind == "sleep":
        if step.get("error"):
            return "errored"
        return "complete" if step.get("finished") else "sleeping"
    if kind == "waitForEvent":
        if step.get("error"):
            return "timed out"
        return "complete" if step.get("finished") else "waiting"
    if kind == "termination":
        return "terminated"
    return "unknown"


def _elapsed(start: object, end: object, *, finished: bool, now: datetime) -> str:
    started = parse_time(start)
    if started is None:
        return "-"
    # An unfinished sleep or wait reports its planned end; show the time spent so far instead.
    ended = parse_time(end) if finished else None
    if ended is None:
        return f"{format_duration((now - started).total_seconds() * 1000)}…"
    return format_duration((ended - started).total_seconds() * 1000)


def _attempts(step: dict[str, Any]) -> str:
    if step.get("type") not in ("step", "rollback"):
        return ""
    count = len(step.get("attempts") or [])
    retries = (step.get("config") or {}).get("retries") or {}
    limit = retries.get("limit")
    return f"{count}/{limit + 1}" if isinstance(limit, int) else str(count)


def _details(
    step: dict[str, Any], *, show_output: bool, output_limit: int, stopped: bool = False
) -> Text:
    kind = step.get("type")
    lines: list[Text] = []
    if kind == "termination":
        lines.append(Text(f"by {trigger_label((step.get('trigger') or {}).get('source'))}"))
    if kind == "sleep" and not stopped and not step.get("finished") and not step.get("error"):
        lines.append(Text(f"wakes at {format_time(step.get('end'))}"))
    if kind == "waitForEvent" and step.get("event_type"):
        lines.append(Text(f"event type: {step['event_type']}"))
    if show_output and step.get("output") is not None:
        output = truncate(_as_text(step.get("output")), output_limit)
        lines.append(Text.assemble(("output: ", "dim"), output))
    for number, attempt in enumerate(step.get("attempts") or [], start=1):
        if attempt.get("error"):
            text = f"attempt {number}: {_error_text(attempt['error'])}"
            lines.append(Text(text, style="red"))
    if step.get("error"):
        lines.append(Text(_error_text(step["error"]), style="red"))
    return Text("\n").join(lines)


def _step_block(
    number: int,
    step: dict[str, Any],
    *,
    show_output: bool,
    output_limit: int,
    now: datetime,
    instance_end: object = None,
) -> RenderableType:
    """One step: a summary line, then its output and errors indented beneath.

    Blocks rather than a table, so long names, outputs and errors wrap across the whole width
    of the terminal instead of inside a narrow column. ``instance_end`` is set once the
    instance has finished: a step still open then (a sleep cut short by terminate) was
    stopped there, and its time runs to that end, not on to now.
    """
    kind = str(step.get("type"))
    status = step_status(step)
    unfinished = status in ("running", "retrying", "sleeping", "waiting")
    if unfinished and instance_end is not None:
        status, unfinished = "stopped", False
    line = Text.assemble(
        (f"{number:>3}. ", "dim"),
        _STEP_TYPE_LABELS.get(kind, kind),
        "  ",
        (str(step.get("name", "")), "bold"),
        "  ",
        (status, _STATUS_STYLES.get(status, "")),
    )
    facts = []
    attempts = _attempts(step)
    if attempts:
        facts.append(f"attempts {attempts}")
    if kind == "termination" and step.get("start"):
        # A termination is a moment, not a span.
        facts.append(f"at {format_time(step['start'])}")
    elif step.get("start"):
        end = instance_end if status == "stopped" else step.get("end")
        facts.append(f"started {format_time(step['start'])}")
        facts.append(_elapsed(step["start"], end, finished=not unfinished, now=now))
    if facts:
        line.append("  \u00b7  " + "  \u00b7  ".join(facts), style="dim")
    details = _details(
        step, show_output=show_output, output_limit=output_limit, stopped=status == "stopped"
    )
    if not details.plain:
        return line
    return Group(line, Padding(details, (0, 0, 0, 9), expand=False))


def _header(
    workflow: str, instance_id: str, details: dict[str, Any], *, output_limit: int, now: datetime
) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")

    def row(label: str, value: str | Text) -> None:
        grid.add_row(label, value if isinstance(value, Text) else Text(value))

    row("Workflow", workflow)
    row("Instance Id", instance_id)
    row("Version Id", str(details.get("versionId") or details.get("version_id") or "-"))
    row("Status", status_label(details.get("status")))
    row("Trigger", trigger_label((details.get("trigger") or {}).get("source", "unknown")))
    row("Queued", format_time(details.get("queued")))
    if details.get("start"):
        row("Start", format_time(details.get("start")))
    if details.get("end"):
        row("End", format_time(details.get("end")))
    if details.get("start"):
        finished = details.get("status") in ("complete", "errored", "terminated")
        row("Duration", _elapsed(details["start"], details.get("end"), finished=finished, now=now))
    if details.get("error"):
        row("Error", Text(_error_text(details["error"]), style="red"))
    rollback = details.get("rollback")
    if isinstance(rollback, dict):
        outcome = str(rollback.get("outcome", "-"))
        if rollback.get("error"):
            outcome += f" ({_error_text(rollback['error'])})"
        row("Rollback", outcome)
    if details.get("status") == "complete" and details.get("output") is not None:
        row("Output", truncate(_as_text(details["output"]), output_limit))
    return grid


def render_instance(
    workflow: str,
    instance_id: str,
    details: dict[str, Any],
    *,
    show_output: bool = True,
    output_limit: int = 5000,
    now: datetime | None = None,
) -> RenderableType:
    """The whole ``instances describe`` screen for one instance."""
    moment = now or datetime.now(UTC)
    header = _header(workflow, instance_id, details, output_limit=output_limit, now=moment)
    raw_steps = details.get("steps")
    steps = [s for s in raw_steps if isinstance(s, dict)] if isinstance(raw_steps, list) else []
    if not steps:
        return Group(header, Text("\nNo steps yet.", style="dim"))
    finished = details.get("status") in ("complete", "errored", "terminated")
    instance_end = (details.get("end") or moment.isoformat()) if finished else None
    blocks = [
        _step_block(
            number,
            step,
            show_output=show_output,
            output_limit=output_limit,
            now=moment,
            instance_end=instance_end,
        )
        for number, step in enumerate(steps, start=1)
    ]
    return Group(header, Text(f"\nSteps ({len(steps)}):", style="bold"), *blocks)
