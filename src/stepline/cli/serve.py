"""``stepline serve``: the HTTP API and the engine in one process."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from stepline.cli.output import UserError, report_errors
from stepline.durations import parse_duration_ms
from stepline.engine.scheduler import MIN_LEASE_MS
from stepline.engine.step_threads import DEFAULT_STEP_THREADS
from stepline.sizes import parse_size
from stepline.store.open import DEFAULT_DATABASE
from stepline.store.sqlite import SYNC_MODES

__all__ = [
    "SERVE_EPILOG",
    "AccountOwnerOption",
    "ConfigOption",
    "DatabaseOption",
    "LeaseOption",
    "LogLevelOption",
    "StorageLimitOption",
    "WorkerLogLevelOption",
    "check_concurrency",
    "configure_logging",
    "lease_ms",
    "serve_command",
    "storage_limit_bytes",
]

SERVE_EPILOG = (
    "Examples:\n\n"
    "  STEPLINE_ACCOUNT_ID=local STEPLINE_API_TOKEN=dev-token stepline serve\n\n"
    "  stepline serve --config examples/stepline.toml --database sqlite:///./data/app.sqlite3\n\n"
    "Point wrangler at it with CLOUDFLARE_API_BASE_URL=http://127.0.0.1:8787/client/v4."
)

DatabaseOption = Annotated[
    str,
    typer.Option(
        "--database",
        envvar="STEPLINE_DATABASE",
        metavar="URL",
        help="sqlite:///path/to/file.sqlite3 (a folder is created as needed), or "
        "postgresql://user@host/database to share it with other processes.",
    ),
]

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="STEPLINE_CONFIG",
        help="stepline.toml declaring \\[\\[workflows]] (default: ./stepline.toml if present).",
    ),
]
AccountOwnerOption = Annotated[
    str | None,
    typer.Option(
        "--account-id",
        help="Account that owns the declared workflows (default: STEPLINE_ACCOUNT_ID, "
        "else 'local').",
        show_default=False,
    ),
]
LeaseOption = Annotated[
    str,
    typer.Option(
        "--lease",
        help="How long this process's claim on an instance or a terminate-all job lasts "
        "unless renewed; another process takes over what a dead one held after this.",
    ),
]
StepThreadsOption = Annotated[
    int,
    typer.Option(
        "--step-threads",
        min=1,
        metavar="N",
        help="Threads for synchronous step functions. A step's timeout counts from when one "
        "takes it up; one kept by a step that timed out is replaced while it runs.",
    ),
]
StorageLimitOption = Annotated[
    str,
    typer.Option(
        "--storage-limit",
        help="The state one instance may persist (its params, step results, the event "
        "payloads it took and its output), as bytes or with a unit: 100MB, 1GiB. Past it, "
        "the instance fails.",
    ),
]


_LOG_LEVEL_HELP = (
    "debug, info, warning: at info, the engine's own events too (recoveries, instances that "
    "errored, with their tracebacks); at debug, every failed attempt"
)
LogLevelOption = Annotated[
    str, typer.Option("--log-level", help=f"{_LOG_LEVEL_HELP}, and every request.")
]
WorkerLogLevelOption = Annotated[str, typer.Option("--log-level", help=f"{_LOG_LEVEL_HELP}.")]
"""A worker's: it serves no requests."""
_LOG_LEVELS = ("debug", "info", "warning", "error")


def configure_logging(level: str) -> None:
    """Log Stepline's records at ``level`` and above on stderr, one line each."""
    if level.lower() not in _LOG_LEVELS:
        raise UserError(f"--log-level must be one of {', '.join(_LOG_LEVELS)}, not {level!r}")
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def storage_limit_bytes(text: str) -> int:
    """``--storage-limit`` in bytes; a user error when it is not a size."""
    try:
        return parse_size(text, what="--storage-limit")
    except ValueError as exc:
        raise UserError(str(exc)) from None


def lease_ms(text: str) -> int:
    """``--lease`` in ms; a user error below the engine's least (renewed every third of it,
    a shorter one lapses between renewals)."""
    lease = parse_duration_ms(text, what="--lease")
    if lease < MIN_LEASE_MS:
        raise UserError(f"--lease must be at least {MIN_LEASE_MS} ms, not {text!r}")
    return lease


def check_concurrency(concurrency: int) -> int:
    """``--concurrency``; a user error below 1 (an engine that would run no instance)."""
    if concurrency < 1:
        raise UserError(f"--concurrency must be at least 1, not {concurrency}")
    return concurrency


def _sqlite_synchronous(text: str) -> str:
    """``--synchronous`` as SQLite's pragma takes it; a user error when it is not a mode."""
    if text.upper() not in SYNC_MODES:
        raise UserError(f"--synchronous must be one of {', '.join(SYNC_MODES)}, not {text!r}")
    return text.upper()


def serve_command(
    config: ConfigOption = None,
    database: DatabaseOption = DEFAULT_DATABASE,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.")] = 8787,
    account_id: AccountOwnerOption = None,
    synchronous: Annotated[
        str,
        typer.Option(
            "--synchronous",
            help="SQLite durability: FULL survives power loss; NORMAL is faster and survives "
            "a process crash.",
        ),
    ] = "FULL",
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="Instances running at once (sleepers excluded).")
    ] = 10_000,
    no_engine: Annotated[
        bool, typer.Option("--no-engine", help="Serve the API only; run no instances.")
    ] = False,
    lease: LeaseOption = "30 seconds",
    storage_limit: StorageLimitOption = "1GiB",
    step_threads: StepThreadsOption = DEFAULT_STEP_THREADS,
    log_level: LogLevelOption = "info",
) -> None:
    """Serve the Cloudflare-compatible REST API and run workflow instances."""
    # Imported here: the server pulls in FastAPI and uvicorn, which every other command (each
    # one a fresh process) would otherwise pay for at start-up.
    from stepline.server import ServerOptions, run_server

    with report_errors(local=True):
        if config is None and Path("stepline.toml").is_file():
            config = Path("stepline.toml")
        if not 1 <= port <= 65535:  # a larger one was taken modulo 65536
            raise UserError(f"--port must be 1 to 65535, not {port}")
        configure_logging(log_level)
        run_server(
            ServerOptions(
                config=config,
                database=database,
                host=host,
                port=port,
                account_id=account_id,
                synchronous=_sqlite_synchronous(synchronous),
                concurrency=check_concurrency(concurrency),
                run_engine=not no_engine,
                lease_ms=lease_ms(lease),
                storage_limit=storage_limit_bytes(storage_limit),
                step_threads=step_threads,
                log_level=log_level,
            )
        )
