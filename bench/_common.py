"""What the scenarios share: fresh databases, a ``stepline serve`` subprocess, counting,
percentiles and resident memory. Only Python's own timers and ``/proc`` are used."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "ACCOUNT",
    "TOKEN",
    "PeakRss",
    "Server",
    "count_status",
    "fresh_dir",
    "percentile",
    "rss_mb",
    "serve",
    "spawn",
    "wait_complete",
    "wait_count",
]

ACCOUNT = "bench"
TOKEN = "bench-token"
REPO = Path(__file__).resolve().parent.parent

_WORKFLOWS = {
    "trivial": "Trivial",
    "stamped": "Stamped",
    "waiter": "Waiter",
    "parker": "Parker",
    "sleeper": "Sleeper",
}


def rss_mb(pid: int | str = "self") -> float:
    """Resident set size of a process, from ``/proc/PID/status`` (VmRSS)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc")


class PeakRss:
    """The highest resident memory seen, and how it split then into anonymous memory and
    mapped files (SQLite's WAL index): sampled at each ``sample``, at each ``sampled`` poll,
    or every ``interval`` seconds inside ``async with peak.sampling(interval)``."""

    def __init__(self) -> None:
        self.mb = rss_mb()
        self.parts: dict[str, float] = {}

    def sample(self) -> None:
        now = rss_mb()
        if now > self.mb:
            self.mb = now
            self.parts = _rss_parts()

    async def sampled(self, count: Awaitable[int]) -> int:
        self.sample()
        return await count

    @contextlib.asynccontextmanager
    async def sampling(self, interval: float = 0.01) -> AsyncIterator[PeakRss]:
        async def every() -> None:
            while True:
                self.sample()
                await asyncio.sleep(interval)

        task = asyncio.create_task(every())
        try:
            yield self
        finally:
            task.cancel()
            self.sample()


def _rss_parts() -> dict[str, float]:
    parts = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("RssAnon:", "RssFile:", "RssShmem:")):
                name, value = line.split()[:2]
                parts[name.rstrip(":")] = int(value) / 1024
    return parts


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@contextlib.contextmanager
def fresh_dir() -> Iterator[Path]:
    """A new folder for one run's database, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="stepline-bench-") as path:
        yield Path(path)


def write_config(folder: Path) -> Path:
    config = folder / "stepline.toml"
    config.write_text(
        "".join(
            f'[[workflows]]\nname = "{name}"\nclass_name = "{cls}"\n'
            f'script_name = "bench.workflows"\n\n'
            for name, cls in _WORKFLOWS.items()
        )
    )
    return config


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(command: list[str], *, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    """Start a process (it runs alongside; nothing here waits for it)."""
    return subprocess.Popen(command, env=env, cwd=cwd)


@dataclass
class Server:
    """A running ``stepline serve`` subprocess and an HTTP client for its API."""

    process: subprocess.Popen[bytes]
    base: str
    http: httpx.AsyncClient

    @property
    def pid(self) -> int:
        return self.process.pid

    def url(self, workflow: str, suffix: str = "") -> str:
        return f"{self.base}/accounts/{ACCOUNT}/workflows/{workflow}/instances{suffix}"

    async def create_batch(self, workflow: str, items: list[dict[str, Any]]) -> list[str]:
        response = await self.http.post(self.url(workflow, "/batch"), json=items)
        response.raise_for_status()
        return [created["id"] for created in response.json()["result"]]

    async def send_event(self, workflow: str, instance_id: str, event_type: str) -> None:
        response = await self.http.post(
            self.url(workflow, f"/{instance_id}/events/{event_type}"), json={}
        )
        response.raise_for_status()

    async def output(self, workflow: str, instance_id: str) -> Any:
        response = await self.http.get(self.url(workflow, f"/{instance_id}"))
        response.raise_for_status()
        return response.json()["result"]["output"]

    async def count(self, workflow: str, status: str | None = None) -> int:
        params: dict[str, Any] = {"per_page": 1}
        if status is not None:
            params["status"] = status
        response = await self.http.get(self.url(workflow), params=params)
        response.raise_for_status()
        return int(response.json()["result_info"]["total_count"])


@contextlib.asynccontextmanager
async def serve(
    folder: Path, *, synchronous: str = "FULL", engine: bool = True
) -> AsyncIterator[Server]:
    """``stepline serve`` on a fresh SQLite file in ``folder``, ready to take requests."""
    port = _free_port()
    command = [
        sys.executable,
        "-c",
        "from stepline.cli.main import main; main()",
        "serve",
        "--config",
        str(write_config(folder)),
        "--database",
        f"sqlite:///{folder / 'stepline.sqlite3'}",
        "--port",
        str(port),
        "--synchronous",
        synchronous,
        "--log-level",
        "warning",
    ]
    if not engine:
        command.append("--no-engine")
    env = dict(os.environ, STEPLINE_ACCOUNT_ID=ACCOUNT, STEPLINE_API_TOKEN=TOKEN)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    process = spawn(command, env=env, cwd=folder)
    base = f"http://127.0.0.1:{port}/client/v4"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(headers=headers, timeout=60, limits=limits) as http:
        server = Server(process, base, http)
        try:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"stepline serve exited with {process.returncode}")
                with contextlib.suppress(httpx.TransportError):
                    response = await http.get(f"{base}/accounts/{ACCOUNT}/workflows")
                    if response.status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("stepline serve did not answer within 30 s")
                await asyncio.sleep(0.05)
            profiler = _attach_profiler(process.pid)
            try:
                yield server
            finally:
                if profiler is not None:
                    profiler.send_signal(signal.SIGINT)
                    profiler.wait(timeout=60)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _attach_profiler(pid: int) -> subprocess.Popen[bytes] | None:
    """With ``STEPLINE_BENCH_PROFILE_SERVER=out.txt``, sample the server with py-spy (installed
    separately) for as long as the scenario uses it: both threads, raw collapsed stacks."""
    out = os.environ.get("STEPLINE_BENCH_PROFILE_SERVER")
    if not out:
        return None
    command = ["py-spy", "record", "--pid", str(pid), "--threads", "-r", "250", "-f", "raw"]
    return subprocess.Popen([*command, "-o", out], stdout=subprocess.DEVNULL)


async def count_status(stepline: Any, workflow: str, status: str) -> int:
    """How many instances of ``workflow`` have ``status`` (one COUNT through the client)."""
    page = await stepline.client.list_instances(
        stepline.account_id, workflow, status=status, per_page=1
    )
    return int(page.total_count)


async def wait_count(
    count: Any, target: int, *, interval: float = 0.005, timeout: float = 3_600
) -> float:
    """Poll ``await count()`` until it reaches ``target``; returns the perf_counter then."""
    deadline = time.perf_counter() + timeout
    while True:
        if await count() >= target:
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise TimeoutError(f"only {await count()} of {target} after {timeout} s")
        await asyncio.sleep(interval)


async def wait_complete(
    stepline: Any, workflow: str, target: int, *, timeout: float = 3_600
) -> float:
    """In process: wait until ``target`` instances of ``workflow`` are complete and return the
    perf_counter then. The engine says when its last runner has ended (each runner ends after
    its instance's end is committed), as DBOS's handles say when its workflows have; one count
    then confirms it. Some still queued or parked (not all complete yet): poll the count."""
    await asyncio.wait_for(stepline.engine.wait_idle(), timeout)
    done = time.perf_counter()
    count = functools.partial(count_status, stepline, workflow, "complete")
    if await count() >= target:
        return done
    return await wait_count(count, target, timeout=timeout)
