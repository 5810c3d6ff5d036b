"""A real ``stepline serve`` in a subprocess, and the installed ``stepline`` CLI run against it.

The approach of ``tests/clients/server.py``: a temporary SQLite database, a ``stepline.toml``
declaring the workflows of :mod:`cli_live_flows` (this folder goes on the server's
``PYTHONPATH``), the account and token in the server's environment, SIGINT to stop it.

Every CLI call is a fresh process, as a user's is: :meth:`Cli.run` strips the caller's
``STEPLINE_*``/``CLOUDFLARE_*`` variables (and ``COLUMNS``/``FORCE_COLOR``, so layout and colour
do not depend on the shell running pytest), then adds the connection the test asks for.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.clients.server import stop_server, wait_until_up

HERE = Path(__file__).resolve().parent
ACCOUNT = "cli-live"
STEPLINE = Path(sys.executable).with_name("stepline")
TERMINAL = ("complete", "errored", "terminated")
PARALLEL_RUNS = 3

# name -> class in cli_live_flows; one workflow per test area keeps each one's lists its own.
WORKFLOWS = {
    "quick": "QuickWorkflow",
    "pages": "QuickWorkflow",
    "sleepy": "SleepyWorkflow",
    "sleepers": "SleepyWorkflow",
    "nap": "NapWorkflow",
    "approval": "ApprovalWorkflow",
    "broken": "BrokenWorkflow",
    "doomed": "QuickWorkflow",
    "doomed-json": "QuickWorkflow",
    "batch": "QuickWorkflow",
    "ties": "ApprovalWorkflow",
    "removal": "SleepyWorkflow",
    "connect": "QuickWorkflow",
}


def stepline_command() -> list[str]:
    if STEPLINE.exists():
        return [str(STEPLINE)]
    return [sys.executable, "-c", "from stepline.cli.main import main; main()"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_environment() -> dict[str, str]:
    """The test process's environment without anything that points the CLI somewhere."""
    dropped = ("STEPLINE_", "CLOUDFLARE_", "CF_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    for name in ("COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE"):
        env.pop(name, None)
    env["TZ"] = "UTC"
    return env


@dataclass(frozen=True)
class LiveServer:
    port: int
    token: str
    log_path: Path
    account_id: str = ACCOUNT

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/client/v4"

    @property
    def stepline_env(self) -> dict[str, str]:
        """The connection as ``STEPLINE_*`` variables."""
        return {
            "STEPLINE_API_URL": self.api_url,
            "STEPLINE_API_TOKEN": self.token,
            "STEPLINE_ACCOUNT_ID": self.account_id,
        }

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.api_url}/accounts/{self.account_id}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def describe(self, workflow: str, instance_id: str) -> dict[str, Any]:
        with self.http() as http:
            answer = http.get(f"/workflows/{workflow}/instances/{instance_id}")
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()["result"]
        return result

    def create(self, workflow: str, instance_id: str, params: Any = None) -> None:
        body: dict[str, Any] = {"instance_id": instance_id}
        if params is not None:
            body["params"] = params
        with self.http() as http:
            answer = http.post(f"/workflows/{workflow}/instances", json=body)
        assert answer.status_code == 200, answer.text

    def wait_for_status(
        self, workflow: str, instance_id: str, *statuses: str, timeout: float = 15
    ) -> dict[str, Any]:
        """Poll over plain HTTP until the instance's status is one of ``statuses``."""
        wanted = statuses or TERMINAL
        deadline = time.monotonic() + timeout
        with self.http() as http:
            while True:
                answer = http.get(f"/workflows/{workflow}/instances/{instance_id}")
                if answer.status_code == 200:
                    detail: dict[str, Any] = answer.json()["result"]
                    if detail["status"] in wanted:
                        return detail
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"{workflow}/{instance_id} did not reach {wanted} in {timeout} s: "
                        f"{answer.status_code} {answer.text[:500]}"
                    )
                time.sleep(0.05)


def _write_config(folder: Path, workflows: Mapping[str, str]) -> Path:
    lines = []
    for name, class_name in workflows.items():
        lines += [
            "[[workflows]]",
            f'name = "{name}"',
            f'class_name = "{class_name}"',
            'script_name = "cli_live_flows"',
            "",
        ]
    path = folder / "stepline.toml"
    path.write_text("\n".join(lines))
    return path


def start_server(
    folder: Path, workflows: Mapping[str, str] = WORKFLOWS, *extra: str
) -> Iterator[LiveServer]:
    """Serve ``workflows`` from ``folder``; yield once the API answers, then stop the server."""
    token = "live-" + secrets.token_hex(16)
    env = clean_environment()
    env["STEPLINE_ACCOUNT_ID"] = ACCOUNT
    env["STEPLINE_API_TOKEN"] = token
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    config = _write_config(folder, workflows)
    server = LiveServer(port=free_port(), token=token, log_path=folder / "server.log")
    command = [
        *stepline_command(),
        "serve",
        "--config",
        str(config),
        "--database",
        f"sqlite:///{folder / 'stepline.sqlite3'}",
        "--port",
        str(server.port),
        "--synchronous",
        "NORMAL",
        "--log-level",
        "warning",
        *extra,
    ]
    with server.log_path.open("wb") as log:
        proc = subprocess.Popen(
            command, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    try:
        wait_until_up(proc, server)
        yield server
    finally:
        stop_server(proc)


# --- running the CLI -----------------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    """One finished CLI process."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def ok(self) -> Ran:
        """Assert success with nothing on stderr; returns itself for chaining."""
        assert self.returncode == 0, f"{self.args} exited {self.returncode}:\n{self.stderr}"
        assert "Traceback" not in self.stderr, self.stderr
        return self

    def json(self) -> Any:
        self.ok()
        return json.loads(self.stdout)

    def failed(self, code: int | None = None) -> str:
        """Assert the one-line failure: exit 1, ``error: ... [code: N]``, no traceback."""
        assert self.returncode == 1, (
            f"{self.args} exited {self.returncode}:\n{self.stdout}\n{self.stderr}"
        )
        assert "Traceback" not in self.stderr, self.stderr
        assert self.stdout == "", self.stdout
        lines = self.stderr.splitlines()
        assert len(lines) == 1, self.stderr
        assert lines[0].startswith("error: "), lines[0]
        if code is not None:
            assert f"[code: {code}]" in lines[0], lines[0]
        return lines[0]

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.stdout.splitlines()]


@dataclass
class Cli:
    """Runs the ``stepline`` script with a connection in its environment."""

    env: dict[str, str] = field(default_factory=dict)

    def run(
        self,
        *args: str,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 60,
    ) -> Ran:
        full_env = clean_environment()
        full_env.update(self.env if env is None else env)
        done = subprocess.run(
            [*stepline_command(), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=full_env,
            cwd=cwd,
            timeout=timeout,
            check=False,
        )
        return Ran(tuple(args), done.returncode, done.stdout, done.stderr)

    def run_many(self, *calls: tuple[str, ...], stdin: str | None = None) -> list[Ran]:
        """Run independent commands side by side (each is mostly process start-up)."""
        with ThreadPoolExecutor(max_workers=PARALLEL_RUNS) as pool:
            return list(pool.map(lambda args: self.run(*args, stdin=stdin), calls))


def table_ids(output: str) -> list[str]:
    """The first column of a Rich table's body rows: the ids an ``instances list`` shows."""
    ids = []
    for line in output.splitlines():
        match = re.match(r"^│ (\S+)\s+│", line)
        if match and match.group(1) not in ("Instance", "Name"):
            ids.append(match.group(1))
    return ids
