"""A real ``stepline serve`` in a subprocess, as the client tests talk to it.

The server gets a temporary SQLite database, a ``stepline.toml`` that declares the workflows of
:mod:`client_flows` under one name per test suite (so each suite's instance lists are its own),
the environment account and token, and two database tokens made beforehand with
``stepline tokens create``: a read-only one for the same account and one for another account.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

HERE = Path(__file__).resolve().parent
ACCOUNT = "stepline-clients"
OTHER_ACCOUNT = "other"

# name -> class in client_flows. Prefixes: sdk- Python SDK, wr- wrangler, ts- TypeScript SDK,
# rp- capture replay, auth- auth suite, lim- request limits.
WORKFLOWS = {
    "sdk-quick": "QuickWorkflow",
    "sdk-sleepy": "SleepyWorkflow",
    "sdk-approval": "ApprovalWorkflow",
    "sdk-broken": "BrokenWorkflow",
    "sdk-pages": "QuickWorkflow",
    "wr-quick": "QuickWorkflow",
    "wr-sleepy": "SleepyWorkflow",
    "wr-approval": "ApprovalWorkflow",
    "wr-broken": "BrokenWorkflow",
    "wr-pages": "QuickWorkflow",
    "wr-doomed": "QuickWorkflow",
    "ts-quick": "QuickWorkflow",
    "ts-sleepy": "SleepyWorkflow",
    "ts-approval": "ApprovalWorkflow",
    "rp-quick": "QuickWorkflow",
    "rp-approval": "ApprovalWorkflow",
    "auth-quick": "QuickWorkflow",
    "lim-quick": "QuickWorkflow",
}

TERMINAL = ("complete", "errored", "terminated")


@dataclass(frozen=True)
class RunningServer:
    """Where the server is and the credentials it accepts."""

    port: int
    database: str
    token: str
    read_only_token: str
    other_token: str
    log_path: Path

    account_id: str = ACCOUNT

    @property
    def base_url(self) -> str:
        """What every client is given: ``http://127.0.0.1:PORT/client/v4``."""
        return f"http://127.0.0.1:{self.port}/client/v4"

    @property
    def account_url(self) -> str:
        return f"{self.base_url}/accounts/{self.account_id}"

    def http(self, token: str | None = None) -> httpx.Client:
        """A plain HTTP client with ``token`` (default: the account's write token)."""
        return httpx.Client(
            base_url=self.account_url,
            headers={"Authorization": f"Bearer {token or self.token}"},
            timeout=30,
        )

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stepline_command() -> list[str]:
    script = Path(sys.executable).with_name("stepline")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from stepline.cli.main import main; main()"]


def _write_config(folder: Path) -> Path:
    lines = []
    for name, class_name in WORKFLOWS.items():
        lines += [
            "[[workflows]]",
            f'name = "{name}"',
            f'class_name = "{class_name}"',
            'script_name = "client_flows"',
            "",
        ]
    path = folder / "stepline.toml"
    path.write_text("\n".join(lines))
    return path


def _server_env(token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPLINE_")}
    env["STEPLINE_ACCOUNT_ID"] = ACCOUNT
    env["STEPLINE_API_TOKEN"] = token
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    return env


def _create_token(database: str, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [*_stepline_command(), "tokens", "create", *args, "--database", database],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


class _Answering(Protocol):
    def http(self) -> httpx.Client: ...

    def log_tail(self) -> str: ...


def wait_until_up(proc: subprocess.Popen[bytes], server: _Answering) -> None:
    """Until the server answers an authenticated list, or raise with its log's tail."""
    deadline = time.monotonic() + 30
    with server.http() as http:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"stepline serve exited with {proc.returncode}:\n{server.log_tail()}"
                )
            try:
                if http.get("/workflows", params={"per_page": 1}).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"stepline serve did not answer in 30 s:\n{server.log_tail()}")
            time.sleep(0.1)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT, as Ctrl-C would; kill after 15 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def start_server(folder: Path, database: str | None = None) -> Iterator[RunningServer]:
    """Start the server in ``folder`` (on ``database``, else a SQLite file there), yield it
    once it answers, then stop it."""
    database = database or f"sqlite:///{folder / 'stepline.sqlite3'}"
    token = "env-" + secrets.token_hex(16)
    env = _server_env(token)
    read_only_token = _create_token(database, env, "--account", ACCOUNT, "--read-only")
    other_token = _create_token(database, env, "--account", OTHER_ACCOUNT)
    config = _write_config(folder)
    port = free_port()
    log_path = folder / "server.log"
    server = RunningServer(
        port=port,
        database=database,
        token=token,
        read_only_token=read_only_token,
        other_token=other_token,
        log_path=log_path,
    )
    command = [
        *_stepline_command(),
        "serve",
        "--config",
        str(config),
        "--database",
        database,
        "--port",
        str(port),
        "--synchronous",
        "NORMAL",
        "--log-level",
        "warning",
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    try:
        wait_until_up(proc, server)
        yield server
    finally:
        stop_server(proc)


def wait_for_status(
    server: RunningServer,
    workflow: str,
    instance_id: str,
    statuses: tuple[str, ...],
    *,
    timeout: float = 15,
) -> dict[str, Any]:
    """Poll the instance over plain HTTP until its status is one of ``statuses``."""
    deadline = time.monotonic() + timeout
    with server.http() as http:
        while True:
            answer = http.get(f"/workflows/{workflow}/instances/{instance_id}")
            if answer.status_code == 200:
                detail: dict[str, Any] = answer.json()["result"]
                if detail["status"] in statuses:
                    return detail
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{workflow}/{instance_id} did not reach {statuses} in {timeout} s: "
                    f"{answer.status_code} {answer.text[:500]}"
                )
            time.sleep(0.05)
