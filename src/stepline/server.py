"""``stepline serve``: the REST API and the engine in one process (or the API alone).

Workflows declared in ``stepline.toml`` are registered on start, in the server's account;
a change in a workflow's code makes a new version, as a redeploy does on Cloudflare.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from stepline.api import ChainAuthenticator, StaticTokenAuthenticator, create_app
from stepline.api.app import HealthCheck
from stepline.api.auth import Authenticator
from stepline.app import Stepline
from stepline.config import load_config
from stepline.declared import import_scope, register_declared, resolve_account
from stepline.engine.step_threads import DEFAULT_STEP_THREADS
from stepline.engine.tuning import run_owned_process
from stepline.errors import ConfigError
from stepline.http_protocol import BoundedHttpToolsProtocol
from stepline.store.open import DEFAULT_DATABASE
from stepline.tokens import StoreTokenAuthenticator
from stepline.validation import MAX_INSTANCE_STORAGE_BYTES

__all__ = ["ServerOptions", "run_server", "serve"]

log = logging.getLogger("stepline.server")

KEEP_ALIVE_S = 75
"""How long an idle connection stays open for the client's next request: longer than clients
and proxies keep one in their pools (httpx and the cloudflare SDK 5 s, Node's undici 4 s,
nginx's upstream pool and AWS load balancers 60 s), so that they close it, not the server.
Closed by the server as a request goes out on it (uvicorn's default was 5 s), the request got
a reset or a disconnect without an answer, and the server logged nothing."""


@dataclass(frozen=True, slots=True)
class ServerOptions:
    config: Path | None = None
    database: str = DEFAULT_DATABASE
    host: str = "127.0.0.1"
    port: int = 8787
    account_id: str | None = None
    synchronous: str = "FULL"
    concurrency: int = 10_000
    run_engine: bool = True
    lease_ms: int = 30_000
    """How long a claim lasts unless renewed: what a dead process held waits this long."""
    storage_limit: int = MAX_INSTANCE_STORAGE_BYTES
    """The UTF-8 bytes one instance may persist."""
    step_threads: int = DEFAULT_STEP_THREADS
    log_level: str = "info"


def health_check(stepline: Stepline) -> HealthCheck:
    """``/healthz``: is the database answering, and is this process running instances."""

    async def check() -> dict[str, object]:
        reachable = await stepline.store.ping()
        return {
            "status": "ok" if reachable else "unavailable",
            "database": {"backend": stepline.store.backend, "reachable": reachable},
            "engine": {
                "running": stepline.engine_running,
                "instances_in_memory": len(stepline.engine.runners),
            },
        }

    return check


def build_authenticator(
    stepline: Stepline, env_auth: StaticTokenAuthenticator | None
) -> Authenticator:
    """The environment's token (``StaticTokenAuthenticator.from_env``), then the database's."""
    database_tokens = StoreTokenAuthenticator(stepline.store)
    if env_auth is None:
        return database_tokens
    return ChainAuthenticator(env_auth, database_tokens)


async def serve(options: ServerOptions) -> None:
    """Run until interrupted."""
    project = load_config(options.config) if options.config is not None else None
    account_id = resolve_account(options.account_id)
    env_auth = StaticTokenAuthenticator.from_env()  # refused settings: before any write
    stepline = Stepline(
        options.database,
        account_id=account_id,
        synchronous=options.synchronous,
        concurrency=options.concurrency,
        lease=options.lease_ms,
        storage_limit=options.storage_limit,
        step_threads=options.step_threads,
        run_engine=options.run_engine,
        import_scope=import_scope(project),
    )  # nothing opened yet: a database URL it refuses is said before the address
    await _refuse_an_address_taken(options.host, options.port)
    await stepline.start()
    with _StopSignals() as stop_signals:
        try:
            if project is not None:
                await register_declared(stepline, project, account_id)
            app = create_app(
                stepline.client,
                build_authenticator(stepline, env_auth),
                health=health_check(stepline),
            )
            config = uvicorn.Config(
                app,
                host=options.host,
                port=options.port,
                log_level=options.log_level,
                access_log=options.log_level == "debug",  # a line a request: off for speed
                http=BoundedHttpToolsProtocol,
                lifespan="off",
                timeout_keep_alive=KEEP_ALIVE_S,
            )
            if env_auth is None:
                # Else a server that no client can use says nothing of it: each request is
                # a 401 (a start that fails before this has its one line alone). At info:
                # tokens of the database alone are a deployment's right choice too.
                log.info(
                    "no STEPLINE_API_TOKEN is set: only tokens made with `stepline tokens "
                    "create` on this database are accepted"
                )
            if not stop_signals.received:  # none came while the workflows were registered
                await uvicorn.Server(config).serve()
        finally:
            await stepline.stop()


async def _refuse_an_address_taken(host: str, port: int) -> None:
    """Listen on ``host:port`` for a moment, as uvicorn will once Stepline has started: an
    address that another server holds (or that is not this machine's) is refused in one line
    before the store is opened and the workflows registered. Found by uvicorn, it was its two
    log lines and its own exit status, after both."""
    loop = asyncio.get_running_loop()
    try:
        probe = await loop.create_server(asyncio.Protocol, host, port)
    except OSError as exc:
        # The system's words alone: asyncio's repeat the address. A name that does not
        # resolve has a negative number, and words of its own.
        reason = os.strerror(exc.errno) if exc.errno and exc.errno > 0 else exc.strerror
        reason = reason or str(exc)
        if exc.errno == errno.EADDRINUSE:
            reason += ": another server listens there (stop it, or give another --port)"
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # IPv6 as in a URL
        raise ConfigError(f"cannot listen on {where}: {reason}") from None
    probe.close()
    await probe.wait_closed()


class _StopSignals:
    """SIGTERM and SIGINT while the server starts, serves and stops.

    Uvicorn handles them while it serves, and once it has shut down it raises the signal
    again for the handler it found: this one, which notes it and lets Stepline's own stop run
    (executing steps finish, instances are parked or handed over, the store is closed),
    where the signal's default handler would end the process first. A second signal during
    that stop ends the process at once, as the default handler does.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():  # else no signal comes here
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = True
        log.info("stopping: executing steps finish, then the store closes")
        default = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
        signal.signal(signum, default)


def run_server(options: ServerOptions) -> None:
    """Serve until interrupted, as a process Stepline owns."""
    run_owned_process(serve(options))
