"""Processes for the PostgreSQL fleet tests: ``stepline serve --no-engine`` and
``stepline worker`` started as subprocesses on one database, and what the tests check."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[2]
STEPLINE = str(Path(sys.executable).with_name("stepline"))
ACCOUNT, TOKEN, WORKFLOW = "fleet", "fleet-token", "fleet"
CONFIG = """\
[[workflows]]
name = "fleet"
class_name = "Fleet"
script_name = "tests.postgres.flows"
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Fleet:
    """The processes of one test, their logs, and the ledger they share."""

    database: str
    folder: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.config = self.folder / "stepline.toml"
        self.config.write_text(CONFIG)
        self.ledger = self.folder / "ledger.txt"
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}/client/v4/accounts/{ACCOUNT}/workflows"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "STEPLINE_ACCOUNT_ID": ACCOUNT,
            "STEPLINE_API_TOKEN": TOKEN,
            "STEPLINE_TEST_LEDGER": str(self.ledger),
        }

    def start(self, name: str, *args: str) -> None:
        with (self.folder / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [STEPLINE, *args, "--database", self.database, "--config", str(self.config)],
                cwd=self.folder,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def start_api(self) -> None:
        self.start(
            "api", "serve", "--no-engine", "--port", str(self.port), "--log-level", "warning"
        )

    def start_worker(self, name: str, *, concurrency: int = 200, lease: str = "2 seconds") -> None:
        self.start(name, "worker", "--concurrency", str(concurrency), "--lease", lease)

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def kill(self, name: str) -> int:
        """SIGKILL ``name``; returns its pid (part of the lease owner names it used)."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        return process.pid

    def stop_all(self) -> dict[str, int | None]:
        """SIGTERM every process; their exit codes (None: had to be killed)."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                codes[name] = None
        self.processes.clear()
        return codes

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)

    async def wait_for_worker(self, name: str, timeout: float = 60) -> None:
        """Until worker ``name`` has started its engine (a worker that cannot reach the
        database while it starts exits, as it should; one that runs rides outages out)."""
        deadline = time.monotonic() + timeout
        while "running up to" not in self.log(name):
            process = self.processes[name]
            assert process.poll() is None, f"{name} exited:\n{self.log(name)[-3000:]}"
            assert time.monotonic() < deadline, self.log(name)[-3000:]
            await asyncio.sleep(0.05)

    async def wait_for_api(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        async with self.client() as http:
            while True:
                for name, process in self.processes.items():
                    assert process.poll() is None, f"{name} exited:\n{self.log(name)[-3000:]}"
                try:
                    response = await http.get(f"{self.api}/{WORKFLOW}")
                    if response.status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, self.log("api")[-3000:]
                await asyncio.sleep(0.2)


async def statuses(database: str) -> dict[str, int]:
    conn = await asyncpg.connect(database)
    try:
        rows = await conn.fetch("SELECT status, COUNT(*) FROM instances GROUP BY status")
    finally:
        await conn.close()
    return {row[0]: row[1] for row in rows}


async def held_by(database: str, pid: int) -> int:
    """How many instances a process with ``pid`` was running when it stopped."""
    conn = await asyncpg.connect(database)
    try:
        count = await conn.fetchval(
            "SELECT COUNT(*) FROM instances WHERE lease_owner LIKE $1 "
            "AND status IN ('running', 'waitingForPause')",
            f"%:{pid}:%",
        )
    finally:
        await conn.close()
    return int(count)


def ledger_runs(ledger: Path) -> dict[tuple[str, str], list[str]]:
    runs: dict[tuple[str, str], list[str]] = defaultdict(list)
    for line in ledger.read_text().splitlines():
        instance_id, step, token = line.split()
        runs[(instance_id, step)].append(token)
    return runs


async def send_events(fleet: Fleet, http: httpx.AsyncClient, numbers: range) -> int:
    """Send each instance its "approve" event over REST; returns how many were resent after
    a 503 (a resend may duplicate an event whose first send did commit)."""
    resent = 0

    async def send(n: int) -> None:
        nonlocal resent
        url = f"{fleet.api}/{WORKFLOW}/instances/i{n}/events/approve"
        for attempt in range(50):  # the API answers 503 while the database is away: retry
            response = await http.post(url, json={"n": n})
            if response.status_code != 503:
                resent += attempt > 0
                break
            await asyncio.sleep(0.2)
        assert response.status_code == 200, response.text

    for start in range(numbers.start, numbers.stop, 50):
        await asyncio.gather(*(send(n) for n in range(start, min(start + 50, numbers.stop))))
    return resent


async def create_instances(
    fleet: Fleet, http: httpx.AsyncClient, count: int, *, start: int = 0
) -> None:
    """Create instances ``i<start>`` .. ``i<count - 1>`` through the REST API, 100 a call."""
    for first in range(start, count, 100):
        batch = [
            {"instance_id": f"i{n}", "params": {"n": n}}
            for n in range(first, min(first + 100, count))
        ]
        retried = False
        for _ in range(50):  # the API answers 503 while the database is away: retry
            response = await http.post(f"{fleet.api}/{WORKFLOW}/instances/batch", json=batch)
            if response.status_code != 503:
                break
            retried = True
            await asyncio.sleep(0.2)
        if retried and response.status_code == 409:
            continue  # the send that got a 503 had committed after all
        assert response.status_code == 200, response.text


async def wait_until_complete(fleet: Fleet, count: int, timeout: float, poll: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while True:
        found = await statuses(fleet.database)
        if found.get("complete", 0) >= count:
            return
        assert time.monotonic() < deadline, (
            found,
            {name: fleet.log(name)[-2000:] for name in fleet.processes},
        )
        await asyncio.sleep(poll)


async def check_outcome(fleet: Fleet, count: int, resent_events: int = 0) -> None:
    runs = ledger_runs(fleet.ledger)
    conn = await asyncpg.connect(fleet.database)
    try:
        assert await conn.fetchval("SELECT COUNT(*) FROM workflows") == 1
        assert await conn.fetchval("SELECT COUNT(*) FROM versions") == 1
        rows = await conn.fetch("SELECT id, status, output FROM instances")
        events = await conn.fetchrow(
            "SELECT COUNT(*), COUNT(consumed_by), COUNT(DISTINCT instance_pk) FROM events"
        )
        steps = await conn.fetch(
            "SELECT i.id, s.name, s.output FROM steps s JOIN instances i ON i.pk = s.instance_pk "
            "WHERE s.kind = 'do'"
        )
    finally:
        await conn.close()
    assert len(rows) == count and {r["status"] for r in rows} == {"complete"}
    # One event each, consumed; a resend after a 503 may have left a duplicate unconsumed.
    assert events[1] == events[2] == count
    assert count <= events[0] <= count + resent_events
    for row in rows:
        output = json.loads(row["output"])
        assert output["approval"] == {"n": int(row["id"][1:])}
    assert len(steps) == 3 * count
    for instance_id, name, output in steps:
        key = (instance_id, "work-" + name.split(" ")[1].split("-")[0])
        recorded = json.loads(output)["token"]
        # The recorded execution is the last one: nothing ran after its success was recorded.
        assert runs[key][-1] == recorded, (key, runs[key], recorded)
    repeated = sum(len(tokens) - 1 for tokens in runs.values())
    print(f"{count} instances; {repeated} step bodies ran again after a crash (at-least-once)")
