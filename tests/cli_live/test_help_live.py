"""The installed script's help and shell completion (no server needed)."""

from __future__ import annotations

import pytest

from .live import Cli, Ran

# tests/cli/test_cli_errors.py checks every command's help in-process (the same Typer app);
# here the installed script shows it for one command of each kind.
COMMANDS = [
    ("workflows", "trigger"),
    ("instances", "describe"),
    ("instances", "create-batch"),
    ("serve",),
]


@pytest.fixture(scope="module")
def helps() -> dict[tuple[str, ...], Ran]:
    """``--help`` of every command, a few at a time (each is mostly a process start)."""
    done = Cli(env={"COLUMNS": "120"}).run_many(*((*command, "--help") for command in COMMANDS))
    return dict(zip(COMMANDS, done, strict=True))


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(
    helps: dict[tuple[str, ...], Ran], command: tuple[str, ...]
) -> None:
    text = helps[command].ok().stdout

    assert f"Usage: stepline {' '.join(command)}" in text
    assert "Example" in text
    # The example runs the command it documents.
    assert f"stepline {' '.join(command)} " in text.split("Example", 1)[1]
    # A flag takes no value, and its help shows none (Typer 0.29 shows ``--help <bool>``).
    assert "<bool>" not in text


def test_the_bash_completion_script_is_printed_on_request() -> None:
    # ``--show-completion`` prints the script of the shell it detects among its parent
    # processes; the variable asks for bash whatever runs the test.
    script = Cli(env={"_STEPLINE_COMPLETE": "source_bash"}).run().ok().stdout

    assert "_stepline_completion()" in script
    assert "complete -o default -F _stepline_completion stepline" in script


def test_bash_completion_completes_commands_and_statuses() -> None:
    def complete(words: str, index: int) -> list[str]:
        env = {"COMP_WORDS": words, "COMP_CWORD": str(index), "_STEPLINE_COMPLETE": "complete_bash"}
        return Cli(env=env).run().ok().stdout.split()

    assert complete("stepline inst", 1) == ["instances"]
    assert "create-batch" in complete("stepline instances ", 2)
    assert complete("stepline instances list checkout --status wait", 5) == [
        "waiting",
        "waitingForPause",
    ]
