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
