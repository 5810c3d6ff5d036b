"""Scenario 6, throughput on PostgreSQL with 1, 2 and 4 engine processes (a hook).

Runs only when ``STEPLINE_BENCH_POSTGRES`` holds a PostgreSQL URL (``postgresql://...``);
otherwise it is skipped with a message. Each run creates a database of its own on that server
(rows left by earlier runs would slow the later ones) and drops it afterwards, starts E
``stepline worker --database URL`` processes,
creates N × K trivial instances through an in-process client that runs no engine, and
counts completions, exactly as scenario 1 does. Needs the PostgreSQL store
(``open_store("postgresql://...")``) and ``stepline worker``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlparse, urlunparse

from bench._common import (
    ACCOUNT,
    REPO,
    count_status,
    fresh_dir,
    spawn,
    wait_count,
    write_config,
)
from bench._harness import Case, Metric, Size

NAME = "postgres throughput"
ENV = "STEPLINE_BENCH_POSTGRES"
METRICS = (
    Metric("steps_per_s", "steps/s", True),
    Metric("instances_per_s", "inst/s", True),
    Metric("elapsed_s", "s", False),
)


def skip_reason() -> str | None:
    if not os.environ.get(ENV):
        return f"skipped: set {ENV}=postgresql://user:pass@host/db to run it"
    return None


def cases(size: Size) -> list[Case]:
    url = os.environ.get(ENV)
    if not url:
        return []
    instances, steps = (200, 3) if size.quick else (10_000, 10)
    return [
        Case(
            f"stepline postgres {instances}x{steps}, {engines} engine process(es)",
            f"{__name__}:postgres",
            {"url": url, "engines": engines, "instances": instances, "steps": steps},
            METRICS,
        )
        for engines in (1, 2, 4)
    ]


@contextlib.asynccontextmanager
async def fresh_database(server_url: str) -> AsyncIterator[str]:
    """The URL of a new, empty database on ``server_url``'s server, dropped on the way out."""
    import asyncpg

    name = f"stepline_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlunparse(urlparse(server_url)._replace(path=f"/{name}"))
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def postgres(url: str, engines: int, instances: int, steps: int) -> dict[str, Any]:
    async with fresh_database(url) as database:
        return await _postgres(database, engines, instances, steps)


async def _postgres(url: str, engines: int, instances: int, steps: int) -> dict[str, Any]:
    from bench.workflows import Trivial
    from stepline import Stepline

    name = f"trivial-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, STEPLINE_ACCOUNT_ID=ACCOUNT)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with fresh_dir() as folder:
        config = write_config(folder)
        async with Stepline(url, account_id=ACCOUNT, run_engine=False) as stepline:
            flow = await stepline.register(name, Trivial, script_name="bench.workflows")
            workers = [
                spawn(
                    [
                        sys.executable,
                        "-c",
                        "from stepline.cli.main import main; main()",
                        "worker",
                        "--config",
                        str(config),
                        "--database",
                        url,
                        "--log-level",
                        "warning",
                    ],
                    env=env,
                    cwd=folder,
                )
                for _ in range(engines)
            ]
            try:
                await asyncio.sleep(2)  # the workers connect and start listening
                started = time.perf_counter()
                for first in range(0, instances, 100):
                    count = min(100, instances - first)
                    await flow.create_batch([{"params": {"steps": steps}}] * count)
                done = await wait_count(
                    lambda: count_status(stepline, name, "complete"), instances, interval=0.02
                )
            finally:
                for worker in workers:
                    worker.terminate()
                for worker in workers:
                    worker.wait(timeout=30)
    elapsed = done - started
    return {
        "steps_per_s": instances * steps / elapsed,
        "instances_per_s": instances / elapsed,
        "elapsed_s": elapsed,
    }
