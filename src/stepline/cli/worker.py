"""``stepline worker``: an engine process without HTTP, one of many on a PostgreSQL database.

Run the API with ``stepline serve --no-engine`` and as many workers as the load needs; they
claim instances with ``FOR UPDATE SKIP LOCKED``, and a worker that dies hands its instances
over when its leases lapse. Workflow classes come from the same ``stepline.toml``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from stepline.app import Stepline
from stepline.cli.output import report_errors
from stepline.cli.serve import (
    AccountOwnerOption,
    ConfigOption,
    DatabaseOption,
    LeaseOption,
    StepThreadsOption,
    StorageLimitOption,
    WorkerLogLevelOption,
    check_concurrency,
    configure_logging,
    lease_ms,
    storage_limit_bytes,
)
from stepline.config import load_config
from stepline.declared import register_declared, resolve_account
from stepline.engine.step_threads import DEFAULT_STEP_THREADS
from stepline.engine.tuning import run_owned_process
from stepline.store.open import DEFAULT_DATABASE
from stepline.validation import MAX_INSTANCE_STORAGE_BYTES

__all__ = ["WORKER_EPILOG", "WorkerOptions", "run_worker", "worker_command"]

log = logging.getLogger("stepline.worker")

WORKER_EPILOG = (
    "Examples:\n\n"
    "  stepline serve --no-engine --database postgresql://app@db/stepline\n\n"
    "  stepline worker --database postgresql://app@db/stepline --concurrency 500\n\n"
    "Start as many workers as you like; each one runs instances until stopped (SIGTERM)."
)


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    config: Path | None = None
    database: str = DEFAULT_DATABASE
    account_id: str | None = None
    concurrency: int = 10_000
    lease_ms: int = 30_000
    """How long a claim lasts unless renewed: a dead worker's instances wait this long."""
    storage_limit: int = MAX_INSTANCE_STORAGE_BYTES
    """The UTF-8 bytes one instance may persist."""
    step_threads: int = DEFAULT_STEP_THREADS
    log_level: str = "info"


async def run_worker(options: WorkerOptions, stop: asyncio.Event | None = None) -> None:
    """Run an engine until ``stop`` is set (or SIGTERM / SIGINT arrives)."""
    project = load_config(options.config) if options.config is not None else None
    account_id = resolve_account(options.account_id)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    stepline = Stepline(
        options.database,
        account_id=account_id,
        concurrency=options.concurrency,
        lease=options.lease_ms,
        storage_limit=options.storage_limit,
        step_threads=options.step_threads,
    )
    await stepline.open_store()
    try:
        # The engine first: on SQLite it is refused when another runs on the file, and a
        # refused process must not have rewritten that engine's workflows.
        await stepline.engine.start()
        try:
            if project is not None:
                # Every process registers: the store serialises it, and unchanged code
                # makes no new version, so workers starting together agree on one.
                await register_declared(stepline, project, account_id)
            # Terminate-all jobs whose process stopped or died are taken up here too, as
            # they are by `stepline serve`: a deployment's API processes may all be gone.
            stepline.control.take_up_jobs()
            log.info(
                "worker %s running up to %d instances", stepline.engine.owner, options.concurrency
            )
            await stop.wait()
            log.info("worker %s stopping", stepline.engine.owner)
        finally:
            await stepline.control.stop(grace_s=stepline.engine.stop_grace_ms / 1000)
            await stepline.engine.stop()  # hands its instances over to the other engines
    finally:
        await stepline.close_store()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def worker_command(
    config: ConfigOption = None,
    database: DatabaseOption = DEFAULT_DATABASE,
    account_id: AccountOwnerOption = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="Instances running at once (sleepers excluded).")
    ] = 10_000,
    lease: LeaseOption = "30 seconds",
    storage_limit: StorageLimitOption = "1GiB",
    step_threads: StepThreadsOption = DEFAULT_STEP_THREADS,
    log_level: WorkerLogLevelOption = "info",
) -> None:
    """Run workflow instances without serving HTTP (one of many workers on PostgreSQL)."""
    with report_errors(local=True):
        if config is None and Path("stepline.toml").is_file():
            config = Path("stepline.toml")
        configure_logging(log_level)
        options = WorkerOptions(
            config=config,
            database=database,
            account_id=account_id,
            concurrency=check_concurrency(concurrency),
            lease_ms=lease_ms(lease),
            storage_limit=storage_limit_bytes(storage_limit),
            step_threads=step_threads,
            log_level=log_level,
        )
        run_owned_process(run_worker(options))
