"""Every command's ``--help`` fits a terminal of 80 columns: no option's name, type or default
is cut short (rich ends what does not fit with "…", and the user cannot type it)."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from stepline.cli.main import app


def _command_paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command under ``command`` (a group has ``commands``), as its words."""
    paths = [path]
    for name, sub in getattr(command, "commands", {}).items():
        paths += _command_paths(sub, (*path, name))
    return paths


COMMANDS = _command_paths(typer.main.get_command(app))


def _command_at(path: tuple[str, ...]) -> Any:
    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command


def test_every_command_is_checked() -> None:
    assert ("serve",) in COMMANDS and ("instances", "describe") in COMMANDS
    assert len(COMMANDS) > 15


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "stepline")
def test_help_at_80_columns_cuts_nothing(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80  # the width was taken
    cut = [line for line in lines if "…" in line]
    assert not cut, "\n".join(cut)


GROUPS = [path for path in COMMANDS if getattr(_command_at(path), "commands", None)]


@pytest.mark.parametrize("path", GROUPS, ids=lambda path: " ".join(path) or "stepline")
def test_a_group_lists_each_command_on_one_line_when_there_is_room(path: tuple[str, ...]) -> None:
    # A summary broken where its docstring's source line ended reads as two commands' worth
    # of text in the list ("newest first (as" / "wrangler shows them)...").
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    panel = result.output.split("Commands ─", 1)[1].split("╰", 1)[0]
    rows = [line.strip("│ ") for line in panel.splitlines()[1:]]
    shown = [sub for sub in _command_at(path).commands.values() if not sub.hidden]
    assert len(rows) == len(shown), "\n".join(rows)
