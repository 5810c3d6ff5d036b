"""Stepline embedded in your process: a store, an engine and a client.

>>> async with Stepline("sqlite:///./.stepline/app.sqlite3") as stepline:
...     await stepline.register("checkout", Checkout)
...     order = await stepline.workflow("checkout").create(params={"sku": "A1"})
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from stepline.authoring.entrypoint import WorkflowEntrypoint
from stepline.client.handles import WorkflowHandle
from stepline.client.local import LocalClient
from stepline.durations import Duration, parse_duration_ms
from stepline.engine.clock import Clock
from stepline.engine.control import Control
from stepline.engine.hooks import NO_HOOKS, StepHooks
from stepline.engine.import_scope import ImportScope
from stepline.engine.registry import WorkflowClasses
from stepline.engine.scheduler import Engine
from stepline.engine.shared_clock import ClockKeeper
from stepline.engine.step_threads import DEFAULT_STEP_THREADS
from stepline.sizes import parse_size
from stepline.store.open import DEFAULT_DATABASE, open_store
from stepline.store.port import Store, WorkflowSettings
from stepline.validation import MAX_INSTANCE_STORAGE_BYTES, check_workflow_name

__all__ = ["DEFAULT_ACCOUNT", "Stepline"]

DEFAULT_ACCOUNT = "local"


class Stepline:
    """The engine and its client in one object; ``async with`` starts and stops it."""

    def __init__(
        self,
        database: str | Store = DEFAULT_DATABASE,
        *,
        account_id: str = DEFAULT_ACCOUNT,
        synchronous: str = "FULL",
        concurrency: int = 10_000,
        suspend_after: Duration = "1 second",
        stop_grace: Duration = "10 seconds",
        lease: Duration = "30 seconds",
        storage_limit: int | str = MAX_INSTANCE_STORAGE_BYTES,
        step_threads: int = DEFAULT_STEP_THREADS,
        clock: Clock | None = None,
        hooks: StepHooks = NO_HOOKS,
        run_engine: bool = True,
        env: Any = None,
        import_scope: ImportScope | None = None,
    ) -> None:
        self.store = (
            open_store(database, synchronous=synchronous) if isinstance(database, str) else database
        )
        self.account_id = account_id
        self.classes = WorkflowClasses(import_scope)
        self.engine = Engine(
            self.store,
            self.classes,
            clock=clock,
            concurrency=concurrency,
            suspend_after_ms=parse_duration_ms(suspend_after, what="suspend_after"),
            stop_grace_ms=parse_duration_ms(stop_grace, what="stop_grace"),
            lease_ms=parse_duration_ms(lease, what="lease"),
            storage_limit=parse_size(storage_limit, what="storage_limit")
            if isinstance(storage_limit, str)
            else storage_limit,
            hooks=hooks,
            env=env,
            step_threads=step_threads,
        )
        self.control = Control(self.engine)
        self._clock_keeper = ClockKeeper(self.engine.clock, self.store)
        self.client = LocalClient(self.control)
        self._run_engine = run_engine
        self._started = False
        self._opened = False
        """Once the store has been opened: its threads and connections do not open twice."""

    @property
    def engine_running(self) -> bool:
        """Whether this process runs instances (False for an API-only server)."""
        return self._run_engine and self._started

    async def start(self) -> None:
        """Start the engine on the store; once per object (make a new one to start again)."""
        await self.open_store()
        if self._run_engine:
            try:
                await self.engine.start()
            except BaseException:  # another engine holds the SQLite file, say
                await self.close_store()
                raise
        self._started = True
        self.control.take_up_jobs()

    async def stop(self) -> None:
        if self._started:
            try:
                await self.control.stop(grace_s=self.engine.stop_grace_ms / 1000)
                if self._run_engine:
                    await self.engine.stop()
            finally:
                # Whatever the engine's stop met, the writes queued so far still commit.
                await self.close_store()
                self._started = False

    async def open_store(self) -> None:
        """Open the store (``start`` does it first): on a database shared between machines
        (PostgreSQL), this process's clock goes by the database's from here on."""
        if self._opened:
            # A second engine over the first one's store, or one over a closed store: either
            # ran, and failed later (a stop that never returned, a closed thread pool).
            raise RuntimeError(
                "this Stepline has been started before, and a Stepline starts once: to start "
                "again (after a stop, or a start that failed), make a new Stepline on the "
                "same database"
            )
        self._opened = True
        await self.store.open()
        try:
            await self._clock_keeper.start()
        except BaseException:
            await self.store.close()
            raise

    async def close_store(self) -> None:
        await self._clock_keeper.stop()
        await self.store.close()

    async def __aenter__(self) -> Stepline:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def register(
        self,
        name: str,
        cls: type[WorkflowEntrypoint],
        *,
        step_limit: int = 10_000,
        success_retention: Duration | None = None,
        error_retention: Duration | None = None,
        concurrency: int | None = None,
        schedules: list[str] | None = None,
        script_name: str | None = None,
    ) -> WorkflowHandle:
        """Declare workflow ``name`` run by ``cls`` (a new version when its code changed).
        ``concurrency`` caps its running instances; ``schedules`` (cron, UTC) create
        instances on their own."""
        check_workflow_name(name)
        settings = WorkflowSettings(
            step_limit=step_limit,
            success_retention_ms=None
            if success_retention is None
            else parse_duration_ms(success_retention, what="success_retention"),
            error_retention_ms=None
            if error_retention is None
            else parse_duration_ms(error_retention, what="error_retention"),
            concurrency_limit=concurrency,
        )
        await self.control.register(
            self.account_id, name, cls, settings, script_name=script_name, schedules=schedules
        )
        return self.workflow(name)

    def workflow(self, name: str) -> WorkflowHandle:
        return WorkflowHandle(self.client, self.account_id, name)
