"""The steps that wait: ``sleep``, ``sleep_until`` and ``wait_for_event``.

A part of :class:`~stepline.engine.runner.Runner`, split out to keep each module about one
thing: it uses the runner's bookkeeping (occurrence counters, the pause boundary, in-memory
waits and suspension) through :class:`~stepline.engine.run_state.RunState`.
"""

from __future__ import annotations

import asyncio
import bisect
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stepline.durations import MAX_WAIT_MS
from stepline.errors import InvalidStepConfig, StaleRunError, WorkflowTimeoutError
from stepline.store.records import EventRecord, StepRecord
from stepline.validation import check_event_type, check_step_name, dump_json, utf8_size

if TYPE_CHECKING:
    from stepline.engine.run_state import RunState

__all__ = ["WaitingSteps"]


class WaitingSteps:
    """Sleeps and event waits of one run."""

    # -- sleeps --------------------------------------------------------------------------------
    async def sleep_for(self: RunState, name: str, duration_ms: int) -> None:
        if duration_ms > MAX_WAIT_MS:
            raise InvalidStepConfig(f"sleep {name!r} is longer than 365 days")
        await self._sleep(name, f"{duration_ms}", lambda now: now + duration_ms)

    async def sleep_until(self: RunState, name: str, when_ms: int) -> None:
        def wake_at(now: int) -> int:
            if when_ms < now:
                raise ValueError("You can't sleep until a time in the past, time-traveler")
            if when_ms - now > MAX_WAIT_MS:
                raise InvalidStepConfig(f"sleep_until {name!r} is more than 365 days away")
            return when_ms

        await self._sleep(name, f"@{when_ms}", wake_at)

    async def _sleep(
        self: RunState, name: str, identity: str, wake_at: Callable[[int], int]
    ) -> None:
        self._guard()
        check_step_name(name)
        scoped, shown = self._scoped(name)
        count = self._occurrence("sleep", f"{scoped}\x00{identity}")
        key = f"sleep:{identity}:{count}:{scoped}"
        self._reached.add(key)
        record = self.steps.get(key)
        if record is not None and record.status == "complete":
            return
        await self._at_boundary()
        if record is None:
            now = self.clock.now_ms()
            record = StepRecord(
                instance_pk=self.pk,
                key=key,
                seq=self._take_seq(),
                kind="sleep",
                name=f"{shown}-{count}",
                status="waiting",
                start=now,
                wake_at=wake_at(now),
            )
            self.steps[key] = record
            self.store.queue_step(self.pk, self.generation, record, now=now)
        assert record.wake_at is not None
        await self._wait_until(record.wake_at)
        record.status, record.end = "complete", record.wake_at
        self.store.queue_step(self.pk, self.generation, record, now=self.clock.now_ms())

    # -- events --------------------------------------------------------------------------------
    async def wait_for_event(
        self: RunState, name: str, event_type: str, timeout_ms: int
    ) -> dict[str, Any]:
        self._guard()
        check_step_name(name)
        check_event_type(event_type)
        if not 1_000 <= timeout_ms <= MAX_WAIT_MS:
            raise InvalidStepConfig("wait_for_event timeout must be 1 second to 365 days")
        scoped, shown = self._scoped(name)
        count = self._occurrence("wait", scoped)
        key = f"wait:{count}:{scoped}"
        self._reached.add(key)
        record = self.steps.get(key)
        if record is not None and record.status == "complete":
            if record.deferred_bytes is not None:
                await self._read_deferred(record)
            return _event_value(record)
        if record is not None and record.status == "errored":
            raise WorkflowTimeoutError(record.error_message or "")
        await self._at_boundary()
        if record is None:
            now = self.clock.now_ms()
            record = StepRecord(
                instance_pk=self.pk,
                key=key,
                seq=self._take_seq(),
                kind="wait",
                name=f"{shown}-{count}",
                status="waiting",
                start=now,
                wake_at=now + timeout_ms,
                event_type=event_type,
                config=dump_json({"timeout": timeout_ms}),
            )
            self.steps[key] = record
            self.store.queue_step(self.pk, self.generation, record, now=now)
        deadline = record.wake_at
        assert deadline is not None
        forced = self.engine.hooks.forced_timeout(name)
        if forced:
            deadline = self.clock.now_ms()
        mocked, payload = self.engine.hooks.mocked_event(event_type)
        if mocked:
            now = self.clock.now_ms()
            text = dump_json(payload)
            self.count_stored(utf8_size(text))
            record.status, record.end, record.output = "complete", now, text
            record.wake_at = now  # a mocked event is sent as the wait takes it
            await self._save(record, now)
            return _event_value(record)
        # Of the run's waits for one type, the one begun first takes its events, then the
        # next: each took its own side by side, and on PostgreSQL (a connection each) the
        # first event sent could go to the wait begun last. One that ends, whatever ends it,
        # leaves its turn to the next, which it wakes.
        # In the order they began (``seq``), not the order this run reaches them: a replay
        # reaches a wait whose branch had a step before it (cached now) ahead of one begun
        # earlier, and a parked instance hands an event to the wait of lowest seq.
        entry = self._event_queues.get(event_type)
        if entry is None:
            entry = self._event_queues[event_type] = ([], asyncio.Lock())
        queue, taking = entry
        bisect.insort(queue, record, key=_began)
        try:
            return await self._take_event(record, deadline, timeout_ms, forced, queue, taking)
        finally:
            queue.remove(record)
            if queue:
                self.notify_event()

    async def _take_event(
        self: RunState,
        record: StepRecord,
        deadline: int,
        timeout_ms: int,
        forced: bool,
        queue: list[StepRecord],
        taking: asyncio.Lock,
    ) -> dict[str, Any]:
        while True:
            self._guard()
            arrived = self._event_arrived
            now = self.clock.now_ms()
            # A forced timeout takes no event, not even one sent before the wait began.
            event = None
            if not forced and queue[0] is record:
                # One take of a type at a time: a wait a replay placed ahead of the first
                # does not take beside the take that one has in flight.
                async with taking:
                    if queue[0] is record:
                        event = await self._take(record, now)
            if event is not None:
                # Taken already: past the storage limit, the instance fails after the wait.
                self.count_stored(utf8_size(event.payload))
                return _event_value(record)
            now = self.clock.now_ms()
            if now >= deadline:
                message = f"Execution timed out after {timeout_ms}ms"
                record.status, record.end = "errored", now
                record.error_name, record.error_message = "WorkflowTimeoutError", message
                await self._save(record, now)
                raise WorkflowTimeoutError(message)
            hot_ms = min(deadline - now, self.engine.suspend_after_ms)
            outcome = await self._wait_for_signal(arrived, now + hot_ms)
            if outcome == "interrupted":
                await self._suspend()
            # The hot phase ended before the deadline: park, unless a clock moved by hand has
            # passed the deadline since (the next turn times the wait out, with no replay).
            if outcome == "timeout" and deadline - now > hot_ms and self.clock.now_ms() < deadline:
                await self._suspend_when_idle()
            if arrived.done() and arrived is self._event_arrived:
                self._event_arrived = asyncio.get_running_loop().create_future()

    async def _take(self: RunState, record: StepRecord, now: int) -> EventRecord | None:
        """Take the wait's event, if one is there; the wait is complete in memory when it was.
        Counted as executing, as an attempt is: a suspension meanwhile (another branch's,
        for a pause or a stop) writes the steps once it is done, or it would write the wait
        as waiting over the take, and the instance, its event taken, would sleep to the
        wait's deadline."""
        self._executing += 1
        self._quiet.clear()
        try:
            event = await self._durable(
                self.store.consume_event(self.pk, self.generation, record, now=now)
            )
            if event is not None:
                record.status, record.end, record.output = "complete", now, event.payload
                record.wake_at = event.created_on  # what the wait returns as its timestamp
            return event
        finally:
            self._executing -= 1
            if self._executing == 0:
                self._quiet.set()

    async def _read_deferred(self: RunState, record: StepRecord) -> None:
        """Read the output the claim left in the store for being large, as its replay needs it."""
        record.output = await self._durable(self.store.step_output(self.pk, record.key))
        record.deferred_bytes = None
        if record.output is None:  # deleted or restarted since the claim: this run is over
            raise StaleRunError(f"step {record.key!r} of instance {self.pk} is gone")

    async def _wait_for_signal(self: RunState, arrived: asyncio.Future[None], until_ms: int) -> str:
        interrupt: asyncio.Future[Any] = asyncio.ensure_future(self._interrupt.wait())
        # On the engine's clock, not a timeout of real time: a test's TestClock moved past
        # the deadline ends the wait then, as it fires a parked one.
        timer: asyncio.Future[None] = asyncio.ensure_future(self.clock.until_ms(until_ms))
        try:
            waiting: set[asyncio.Future[Any]] = {arrived, interrupt, timer}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            interrupt.cancel()
            timer.cancel()
        if self._interrupt.is_set():
            return "interrupted"
        return "signal" if arrived in done else "timeout"


def take_value(record: StepRecord) -> Any:
    """A finished step's stored value, decoded; the record lets go of its text. A run reaches
    each step key once (a replay is a new run, which reads the store), so nothing reads it
    again, and an instance that takes a thousand 1 MiB results does not hold a GiB."""
    text, record.output = record.output, None
    return None if text is None else json.loads(text)


def _began(record: StepRecord) -> int:
    return record.seq


def _event_value(record: StepRecord) -> dict[str, Any]:
    """What a wait that took an event returns: its payload, when it was sent and its type.
    The send time is the taken wait's ``wake_at`` (never after its end). A wait taken before
    that was so kept its deadline there instead: the earlier of the two, which is its end
    unless its replay took the event after the deadline."""
    end = record.end or record.start
    sent = end if record.wake_at is None else min(record.wake_at, end)
    return {
        "payload": take_value(record),
        "timestamp": datetime.fromtimestamp(sent / 1000, UTC),
        "type": record.event_type,
    }
