"""The installed ``stepline`` script, run as a user runs it, against the fake API."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from stepline.store.migrations import load_migrations
from stepline.store.sqlite import SqliteStore

from .conftest import FakeServer

STEPLINE = Path(sys.executable).with_name("stepline")

pytestmark = pytest.mark.skipif(not STEPLINE.exists(), reason="stepline script not installed")


def run(
    connection_env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STEPLINE_", "CLOUDFLARE_"))}
    env.update(connection_env)
    return subprocess.run(
        [str(STEPLINE), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_instances_list(connection_env: dict[str, str]) -> None:
    result = run(connection_env, "instances", "list", "checkout")

    assert result.returncode == 0, result.stderr
    assert "Showing 3 instances from page 1:" in result.stdout
    assert "✅ Completed" in result.stdout


def test_describe_json(connection_env: dict[str, str]) -> None:
    result = run(connection_env, "instances", "describe", "checkout", "order-1", "--json")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["output"] == {"receipt": "r-1"}


def test_trigger_then_latest(connection_env: dict[str, str], api: FakeServer) -> None:
    triggered = run(
        connection_env, "workflows", "trigger", "checkout", '{"cart": 9}', "--id", "o-9"
    )
    latest = run(connection_env, "instances", "describe", "checkout", "latest", "--json")

    assert triggered.returncode == 0, triggered.stderr
    assert json.loads(latest.stdout)["id"] == "o-9"


def test_user_error_is_one_line_without_traceback(connection_env: dict[str, str]) -> None:
    result = run(
        connection_env,
        "instances",
        "send-event",
        "checkout",
        "order-3",
        "--type",
        "t",
        "--payload",
        "{",
    )

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: --payload is not valid JSON")


def test_not_found_is_one_line_without_traceback(connection_env: dict[str, str]) -> None:
    result = run(connection_env, "workflows", "describe", "absent")

    assert result.returncode == 1
    assert result.stderr == (
        "error: workflows.api.error.workflow.not_found [code: 10200] \u2013 "
        'workflow "absent" does not exist\n'
    )


def test_create_batch_from_stdin(connection_env: dict[str, str], api: FakeServer) -> None:
    lines = "\n".join(json.dumps({"instance_id": f"s-{n}"}) for n in range(120))

    result = run(connection_env, "instances", "create-batch", "checkout", "-", stdin=lines)

    assert result.returncode == 0, result.stderr
    assert 'Created 120 instances of "checkout"; skipped 0' in result.stdout
    assert len([k for k in api.state.instances["checkout"] if k.startswith("s-")]) == 120


def test_version(connection_env: dict[str, str]) -> None:
    result = run(connection_env, "--version")

    assert result.returncode == 0
    assert result.stdout.startswith("stepline ")


def test_serve_refuses_an_account_without_a_token_before_it_writes(tmp_path: Path) -> None:
    database = tmp_path / "stepline.sqlite3"
    result = run({"STEPLINE_ACCOUNT_ID": "acct"}, "serve", "--database", f"sqlite:///{database}")

    assert result.returncode == 1
    assert "set both STEPLINE_ACCOUNT_ID and STEPLINE_API_TOKEN, or neither" in result.stderr
    assert not database.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["serve", "--port", "18100"],
        ["worker"],
        ["tokens", "create", "--account", "acct"],
    ],
    ids=["serve", "worker", "tokens-create"],
)
def test_a_database_of_a_newer_stepline_is_refused_in_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    database = tmp_path / "stepline.sqlite3"
    asyncio.run(_migrated(database))
    newer = load_migrations("sqlite")[-1].number + 1
    with sqlite3.connect(database) as conn:
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_on) VALUES (?, 'later', 0)",
            (newer,),
        )
    conn.close()

    result = run({}, *command, "--database", f"sqlite:///{database}")

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(
        "error: this database was last migrated by a newer Stepline "
        f"(schema migration {newer:04d}_later; this Stepline knows up to "
    )
    assert result.stderr.endswith("upgrade Stepline to use it\n")


async def _migrated(path: Path) -> None:
    store = SqliteStore(path)
    await store.open()
    await store.close()
