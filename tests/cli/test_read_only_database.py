"""A SQLite database that the process may not write, run as a user to whom permissions apply
(:mod:`unprivileged`): refused at start in one line that names the path and what Stepline
needs; and a folder that turns read-only while the server runs does not spoil its stop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stepline import Stepline
from tests.cli_live.live import clean_environment, free_port, stepline_command

from .test_serve_signals import (  # the same slow step, under another module name
    FLOWS,
    start_slow_instance,
)
from .unprivileged import unprivileged

NEEDS = (
    "Stepline needs write access to the database and its folder "
    "(for -wal, -shm, the engine lock and the notice socket)"
)

CONFIG = """\
[[workflows]]
name = "slow"
class_name = "Slow"
script_name = "read_only_flows"
"""


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """The database's folder, writable again at the end whatever a test made of it."""
    folder = tmp_path / "data"
    folder.mkdir()
    yield folder
    folder.chmod(0o755)
    for path in folder.iterdir():
        if not path.is_socket():
            path.chmod(0o644)


def _existing_database(folder: Path) -> Path:
    path = folder / "stepline.sqlite3"
    asyncio.run(_create(path))
    return path


async def _create(path: Path) -> None:
    async with Stepline(f"sqlite:///{path}", account_id="acct"):
        pass


def _start(command: str, database: Path) -> subprocess.CompletedProcess[str]:
    args = [*stepline_command(), command, "--database", f"sqlite:///{database}"]
    if command == "serve":
        args += ["--port", str(free_port())]
    return subprocess.run(
        unprivileged(args),
        capture_output=True,
        text=True,
        env=clean_environment(),
        timeout=60,
        check=False,
    )


def _assert_refused(done: subprocess.CompletedProcess[str], path: Path, verb: str) -> None:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line == f"error: cannot {verb} {path}: permission denied; {NEEDS}"


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_read_only_database_file_is_refused_in_one_line(folder: Path, command: str) -> None:
    database = _existing_database(folder)
    database.chmod(0o444)

    _assert_refused(_start(command, database), database, "write")


@pytest.mark.parametrize("command", ["serve", "worker"])
@pytest.mark.parametrize("exists", [True, False], ids=["database", "no-database"])
def test_a_read_only_folder_is_refused_in_one_line(
    folder: Path, command: str, exists: bool
) -> None:
    database = _existing_database(folder) if exists else folder / "stepline.sqlite3"
    folder.chmod(0o555)

    _assert_refused(_start(command, database), folder, "write")


def test_a_folder_that_cannot_be_made_is_refused_in_one_line(folder: Path) -> None:
    folder.chmod(0o555)
    refused = _start("serve", folder / "more" / "stepline.sqlite3")

    _assert_refused(refused, folder / "more", "create")


@pytest.mark.timeout(90)
def test_a_folder_turned_read_only_while_serving_stops_cleanly_and_keeps_its_writes(
    tmp_path: Path, folder: Path
) -> None:
    """The step executing at the signal and an instance created after the change are both
    recorded (SQLite writes the files it holds open); the socket that cannot be removed is
    left, without a traceback, and the process exits 0."""
    (tmp_path / "read_only_flows.py").write_text(FLOWS)
    (tmp_path / "stepline.toml").write_text(CONFIG)
    database = f"sqlite:///{folder / 'stepline.sqlite3'}"
    started = tmp_path / "started"
    port = free_port()
    env = clean_environment() | {
        "STEPLINE_ACCOUNT_ID": "acct",
        "STEPLINE_API_TOKEN": "tok-read-only",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
        "SLOW_STARTED": str(started),
    }
    command = [*stepline_command(), "serve", "--config", str(tmp_path / "stepline.toml")]
    command += ["--database", database, "--port", str(port), "--log-level", "warning"]
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            unprivileged(command), cwd=tmp_path, env=env, stdout=log, stderr=log
        )
    try:
        base = f"http://127.0.0.1:{port}/client/v4/accounts/acct/workflows/slow/instances"
        headers = {"Authorization": "Bearer tok-read-only"}
        start_slow_instance(server, log_path, base, headers, "before", started)
        folder.chmod(0o555)
        later = httpx.post(base, json={"instance_id": "after"}, headers=headers)
        assert later.status_code == 200, later.text
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)
        folder.chmod(0o755)
    text = log_path.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert code == 0, text[-3000:]
    before, after = asyncio.run(_statuses(database, "before", "after"))
    [step] = before["steps"]
    assert step["success"] is True, before  # finished and recorded before the process ended
    assert after["status"] in ("queued", "running", "complete"), after


async def _statuses(database: str, *instance_ids: str) -> list[dict[str, Any]]:
    async with Stepline(database, account_id="acct", run_engine=False) as look:
        workflow = look.workflow("slow")
        return [await (await workflow.get(i)).status() for i in instance_ids]
