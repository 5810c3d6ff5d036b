"""What the parts of :class:`~stepline.engine.runner.Runner` see of it.

The runner is one class assembled from mixins, each in a module of its own: the waits
(:mod:`~stepline.engine.waits`), the attempt of a step (:mod:`~stepline.engine.attempts`)
and the parking of the instance (:mod:`~stepline.engine.parking`). Each takes ``self`` as
:class:`RunState`: the runner's bookkeeping and the methods they call on one another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from stepline.engine.clock import Clock
    from stepline.engine.nesting import Enclosing
    from stepline.engine.run_signals import FatalInstanceError
    from stepline.engine.scheduler import Engine
    from stepline.engine.step_threads import Loan, Queued
    from stepline.store.port import Store
    from stepline.store.records import Attempt, EventRecord, InstanceRecord, StepRecord

__all__ = ["RunState"]

T = TypeVar("T")


class RunState(Protocol):
    engine: Engine
    store: Store
    clock: Clock
    instance: InstanceRecord
    pk: int
    generation: int
    steps: dict[str, StepRecord]
    pause_requested: bool
    _reached: set[str]
    _started_steps: int
    _interrupt: asyncio.Event
    _event_arrived: asyncio.Future[None]
    _event_queues: dict[str, tuple[list[StepRecord], asyncio.Lock]]
    _careful: bool
    _executing: int
    _quiet: asyncio.Event
    _saving: int
    _saved: asyncio.Future[None] | None
    _suspending: bool
    _parked: asyncio.Future[None] | None
    _draining: bool
    _fatal: FatalInstanceError | None
    _park_writing: bool

    # -- the runner's own ----------------------------------------------------------------------
    def _guard(self) -> None: ...

    def _occurrence(self, kind: str, name: str) -> int: ...

    def _take_seq(self) -> int: ...

    def count_stored(self, size: int) -> None: ...

    def _fatal_instance(self, message: str) -> FatalInstanceError: ...

    def _scoped(self, name: str) -> tuple[str, str]: ...

    def _announce(self, record: StepRecord) -> None: ...

    async def _save(self, record: StepRecord, now: int) -> None: ...

    async def _durable(self, write: Awaitable[T]) -> T: ...

    def notify_event(self) -> None: ...

    # -- the waits' ----------------------------------------------------------------------------
    async def _sleep(self, name: str, identity: str, wake_at: Callable[[int], int]) -> None: ...

    async def _take_event(
        self,
        record: StepRecord,
        deadline: int,
        timeout_ms: int,
        forced: bool,
        queue: list[StepRecord],
        taking: asyncio.Lock,
    ) -> dict[str, Any]: ...

    async def _take(self, record: StepRecord, now: int) -> EventRecord | None: ...

    async def _wait_for_signal(self, arrived: asyncio.Future[None], until_ms: int) -> str: ...

    async def _read_deferred(self, record: StepRecord) -> None: ...

    # -- the attempt's -------------------------------------------------------------------------
    @staticmethod
    def _lending(enclosing: tuple[Enclosing, ...]) -> tuple[Loan, ...]: ...

    def _cut_short(self, inside: Enclosing) -> bool: ...

    @staticmethod
    def _passes_cut(exc: BaseException) -> bool: ...

    def _leave_enclosing(self) -> None: ...

    async def _taken_up(self, queued: Queued) -> bool: ...

    def _fatal_step(
        self, record: StepRecord, attempt: Attempt, message: str
    ) -> FatalInstanceError: ...

    def _end_fatally(self, record: StepRecord, attempt: Attempt, message: str) -> None: ...

    # -- the parking's -------------------------------------------------------------------------
    async def _wait_until(self, wake_at: int) -> None: ...

    async def _suspend_when_idle(self) -> None: ...

    async def _at_boundary(self) -> None: ...

    async def _suspend(self) -> None: ...

    async def _park(self) -> None: ...
