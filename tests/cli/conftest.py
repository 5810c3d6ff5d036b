"""Fixtures for the CLI tests: the fake API on a real port, seeded data, and a CLI runner."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from typer.testing import CliRunner, Result

from stepline.cli.main import app

from .fake_api import ACCOUNT_ID, TOKEN, FakeState, at, build_app


@dataclass
class FakeServer:
    state: FakeState
    api_url: str


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeServer]:
    state = FakeState()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(
        build_app(state),
        log_level="warning",
        lifespan="off",
        ws="none",
        http="h11",
        loop="asyncio",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the fake API did not start")
        time.sleep(0.01)
    yield FakeServer(state=state, api_url=f"http://127.0.0.1:{port}/client/v4")
    server.should_exit = True
    thread.join(timeout=10)
    listener.close()


def seed(state: FakeState) -> None:
    """Two workflows; ``checkout`` has a finished, a failed and a waiting instance."""
    state.add_workflow("checkout", created_at=0)
    state.add_workflow("nightly-report", created_at=60)
    state.add_instance(
        "checkout",
        "order-1",
        created_on=at(100),
        status="complete",
        params={"cart": 1},
        start=at(101),
        end=at(106),
        success=True,
        output={"receipt": "r-1"},
        steps=[
            {
                "type": "step",
                "name": "charge card-1",
                "start": at(101),
                "end": at(102),
                "success": True,
                "output": {"charge_id": "ch_1"},
                "attempts": [{"start": at(101), "end": at(102), "success": True, "error": None}],
                "config": {"retries": {"limit": 5, "delay": 1000}, "timeout": "10 minutes"},
            },
            {
                "type": "sleep",
                "name": "cool off-1",
                "start": at(102),
                "end": at(106),
                "finished": True,
                "error": None,
            },
        ],
    )
    state.add_instance(
        "checkout",
        "order-2",
        created_on=at(200),
        status="errored",
        start=at(201),
        end=at(231),
        success=False,
        error={"name": "Error", "message": "card declined"},
        steps=[
            {
                "type": "step",
                "name": "charge card-1",
                "start": at(201),
                "end": at(231),
                "success": False,
                "output": None,
                "attempts": [
                    {
                        "start": at(201),
                        "end": at(202),
                        "success": False,
                        "error": {"name": "Error", "message": "gateway timeout"},
                    },
                    {
                        "start": at(212),
                        "end": at(231),
                        "success": False,
                        "error": {"name": "Error", "message": "card declined"},
                    },
                ],
                "config": {"retries": {"limit": 1, "delay": 10000}, "timeout": "10 minutes"},
            }
        ],
    )
    state.add_instance(
        "checkout",
        "order-3",
        created_on=at(300),
        status="running",
        start=at(301),
        steps=[
            {
                "type": "waitForEvent",
                "name": "approval-1",
                "start": at(301),
                "end": at(3901),
                "finished": False,
                "error": None,
                "event_type": "approved",
            }
        ],
    )


@pytest.fixture
def api(fake_server: FakeServer) -> FakeServer:
    """The fake API, reset and seeded for one test."""
    fake_server.state.reset()
    seed(fake_server.state)
    return fake_server


@pytest.fixture
def connection_env(api: FakeServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Environment that points the CLI at the fake API, with wrangler's variables cleared."""
    for name in (
        "STEPLINE_API_URL",
        "STEPLINE_API_TOKEN",
        "STEPLINE_ACCOUNT_ID",
        "CLOUDFLARE_API_BASE_URL",
        "CLOUDFLARE_API_TOKEN",
        "CLOUDFLARE_ACCOUNT_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    # Times print in local time; pin the zone so expected strings hold on every machine.
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield {
        "STEPLINE_API_URL": api.api_url,
        "STEPLINE_API_TOKEN": TOKEN,
        "STEPLINE_ACCOUNT_ID": ACCOUNT_ID,
        "COLUMNS": "200",
        "TZ": "UTC",
    }
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def cli(connection_env: dict[str, str]) -> CliInvoker:
    return CliInvoker(connection_env)


class CliInvoker:
    """Runs ``stepline`` in-process with the connection environment."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None, **env: str) -> Result:
        return self.runner.invoke(app, list(args), input=input, env={**self.env, **env})
