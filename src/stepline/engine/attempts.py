"""The attempt of a step (``step.do``), and what becomes of it.

A part of :class:`~stepline.engine.runner.Runner`, split out to keep each module about one
thing (see :mod:`~stepline.engine.run_state`). One attempt runs its function: an ``async``
body starts at once, a sync one on a step thread (withdrawn if the run is interrupted before
a thread takes it up); one that waits is announced and timed. A suspension that a step
inside its body begins cuts the attempt short (:mod:`~stepline.engine.nesting`): it is no
attempt, and the suspension goes on. Its outcome is checked (a result that is JSON and within
the limits) or recorded as a failure; after a failure, a step's delay function is asked how
long to wait before the next.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from stepline.authoring.step import StepContext
from stepline.durations import parse_duration_ms
from stepline.engine.eager import start
from stepline.engine.nesting import ENCLOSING, Enclosing
from stepline.engine.run_signals import FatalInstanceError, StoreLost, Suspended
from stepline.engine.step_errors import error_message, error_name
from stepline.engine.step_threads import Loan
from stepline.errors import (
    InvalidDuration,
    NonRetryableDelayError,
    StaleRunError,
    WorkflowInternalError,
    WorkflowTimeoutError,
)
from stepline.store.records import Attempt, StepRecord
from stepline.validation import MAX_PAYLOAD_BYTES, dump_json, utf8_size

if TYPE_CHECKING:
    from stepline.engine.run_state import RunState
    from stepline.engine.step_threads import Queued

__all__ = ["StepAttempts"]

log = logging.getLogger("stepline.engine")

_DELAY_FUNCTION_S = 5
"""How long a step's delay function has to answer (§2.4)."""


class _Withdrawn(Exception):
    """A sync attempt taken back before any thread started it (see ``_taken_up``)."""


class StepAttempts:
    """The attempts of one run's steps."""

    async def _ask_delay(
        self: RunState,
        delay_fn: Callable[..., Any],
        ctx: StepContext,
        failure: Exception,
        label: str,
    ) -> int:
        """The base delay, in ms, that a step's delay function gives after the attempt of
        ``ctx`` failed with ``failure``. Sync functions run on the step threads; either kind
        has 5 seconds. One that raises, runs over or gives no duration spends the step
        (``NonRetryableDelayError``)."""
        timer = asyncio.timeout(_DELAY_FUNCTION_S)
        try:
            async with timer:
                if inspect.iscoroutinefunction(delay_fn):
                    answer = await delay_fn(ctx, failure)
                else:
                    lending = self._lending(ENCLOSING.get())
                    answer = await self.engine.step_threads.run(
                        delay_fn, ctx, failure, lending=lending
                    )
                    if type(answer) is CoroutineType:
                        answer = await answer
        except (asyncio.CancelledError, KeyboardInterrupt, GeneratorExit):
            raise
        except BaseException as exc:  # sys.exit() or a BaseException of its own, too
            reason = (
                f"did not return within {_DELAY_FUNCTION_S} seconds"
                if timer.expired()
                else f"threw an error: {error_message(exc)}"
            )
            raise NonRetryableDelayError(
                f'The delay function for step "{label}" {reason}'
            ) from None
        try:
            return parse_duration_ms(answer, what="delay")
        except InvalidDuration:
            raise NonRetryableDelayError(
                f'The delay function for step "{label}" returned {answer!r}, which is not '
                "a duration"
            ) from None

    def _failed(self: RunState, attempt: Attempt, exc: Exception) -> Exception:
        """Record ``attempt`` as failed by ``exc``; returns ``exc``. With debug logging on,
        the traceback is logged too (a failed attempt is retried, so this is not a warning)."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("instance %s: an attempt failed", self.instance.id, exc_info=exc)
        attempt.end = self.clock.now_ms()
        attempt.success = False
        attempt.error_name, attempt.error_message = error_name(exc), error_message(exc)
        return exc

    def _settle_dangling_attempt(self: RunState, record: StepRecord) -> Exception | None:
        """An attempt with no end was cut off by a crash: it counts as a failed attempt."""
        if not record.attempts or record.attempts[-1].end is not None:
            return None
        failure = WorkflowInternalError("Attempt failed due to internal workflows error")
        attempt = record.attempts[-1]
        attempt.end, attempt.success = self.clock.now_ms(), False
        attempt.error_name, attempt.error_message = "WorkflowInternalError", str(failure)
        return failure

    async def _attempt(
        self: RunState,
        call: Callable[[StepContext], Any],
        ctx: StepContext,
        is_async: bool,
        timeout_ms: int,
        record: StepRecord,
        attempt: Attempt,
    ) -> Any:
        """Run one attempt. An ``async`` body starts at once: one that finishes without
        waiting needs no deadline and no "attempt started" write (its outcome is the one
        write). One that waits, or runs on a thread, is announced and timed from there."""
        mocked_error = self.engine.hooks.mocked_error(ctx.step_name)
        if mocked_error is not None:
            raise mocked_error
        if self._careful:
            # This run follows a crash, and this is its first attempt (or one started beside
            # it, in a gather): the step that ended the process, likely. Its start is
            # committed before its code runs, so that a step which ends the process at once
            # (native code that crashes, an OOM kill), before the usual write of a start
            # could land, counts as a failed attempt each time and is retried only as its
            # config says, rather than run again by every recovery.
            await self._save(record, self.clock.now_ms())
            self._careful = False
        inside = Enclosing(record, attempt, ctx.attempt, on_thread=not is_async)
        enclosing = ENCLOSING.get()
        ENCLOSING.set((*enclosing, inside))
        queued: Queued | None = None
        on_thread: asyncio.Future[Any] | None = None
        try:
            if is_async:
                work: Any = call(ctx)
                if type(work) is CoroutineType:
                    finished, work = start(work)
                    if finished and type(work) is not CoroutineType:
                        if self._cut_short(inside):
                            raise Suspended()  # the body swallowed it
                        return work
            else:
                lending = self._lending(enclosing)
                work, queued = self.engine.step_threads.run_queued(call, ctx, lending=lending)
                on_thread = work
            if not inside.cut:
                inside.counted = True
                self._executing += 1
                self._quiet.clear()
            if queued is not None:
                # Every step thread is busy: the attempt starts, and its timeout counts, from
                # when one takes it up.
                try:
                    taken = await self._taken_up(queued)
                except BaseException:
                    work.cancel()  # it never starts
                    raise
                if not taken:
                    record.attempts.pop()  # withdrawn: this run made no attempt
                    raise _Withdrawn()
                attempt.start = self.clock.now_ms()
            self._announce(record)
            deadline = self.engine.deadlines.limit(timeout_ms / 1000)
            try:
                with deadline:
                    value = await work
                    inside.on_thread = False  # its body returned: no thread waits in it now
                    if type(value) is CoroutineType:  # not a generator: that is a (bad) result
                        # A function that is not ``async def`` returned it (a lambda around
                        # an async call): it is the attempt, and its time counts.
                        value = await value
            except TimeoutError:
                if not deadline.expired:
                    raise  # the step's own (an upstream call's timeout): a failure like any
                raise WorkflowTimeoutError(f"Execution timed out after {timeout_ms}ms") from None
        except _Withdrawn:
            pass
        except BaseException as exc:
            if self._cut_short(inside) and not self._passes_cut(exc):
                # The body swallowed the suspension, or let out something else instead (its
                # deadline, a task group's cancellations): the suspension decides.
                raise Suspended() from None
            raise
        else:
            if self._cut_short(inside):
                raise Suspended()  # the body swallowed it
            return value
        finally:
            # Set back rather than reset by token: a coroutine closed by the garbage collector
            # runs this outside its task's context, where a token is refused.
            ENCLOSING.set(enclosing)
            inside.over = True
            if on_thread is not None and on_thread.done() and not on_thread.cancelled():
                inside.on_thread = False  # its body returned (or raised)
            elif inside.on_thread and inside.loan is not None:
                self.engine.step_threads.end_loan(inside.loan)  # given up: it may run on
            if inside.counted:
                inside.counted = False
                self._executing -= 1
                if self._executing == 0:
                    self._quiet.set()
        await self._suspend()  # the suspension that withdrew it goes on, and raises
        raise AssertionError("unreachable: _suspend raises")

    @staticmethod
    def _lending(enclosing: tuple[Enclosing, ...]) -> tuple[Loan, ...]:
        """A sync function is about to go on a step thread, from a branch inside the bodies
        of ``enclosing``: the innermost on a step thread waits for it there, and lends its
        thread until it ends. Held by bodies that each wait for a step inside them, every
        thread would be taken, and the steps they wait for would queue for ever.

        Only the innermost: the bodies outside it wait for it, whose own work lends their
        threads while it is on the threads. Once it is given up (it timed out) they wait no
        more, though it, and the work inside it, may run on; lent by that work too, they
        went on working for no thread until it returned. One given up lends nothing: its
        thread is counted as given up already. One whose body has returned is on no thread
        (``on_thread`` is cleared): the body outside it may wait for what it started (a task
        whose future it kept), and lends its thread, as a step called from it would."""
        for outer in reversed(enclosing):
            if outer.on_thread:
                if outer.over:
                    return ()
                if outer.loan is None:
                    outer.loan = Loan()
                return (outer.loan,)
        return ()

    def _cut_short(self: RunState, inside: Enclosing) -> bool:
        """Whether the attempt of ``inside``, over now, was cut short by the suspension that a
        step inside it began. A wait inside it that was only about to park (waiting for the
        run's other branches) has not begun one: if its body ended first (it failed, or
        timed out), the attempt stands, and ends as the body did."""
        if not inside.cut:
            return False
        if self._suspending:
            return True
        inside.put_back()
        return False

    @staticmethod
    def _passes_cut(exc: BaseException) -> bool:
        """Whether ``exc``, out of an attempt cut short by a suspension, goes on out as it
        is: the engine's own signals and the run's own cancellation do."""
        if isinstance(exc, asyncio.CancelledError):
            task = asyncio.current_task()
            return task is None or task.cancelling() > 0
        return isinstance(
            exc,
            (
                Suspended,
                StoreLost,
                StaleRunError,
                FatalInstanceError,
                KeyboardInterrupt,
                GeneratorExit,
            ),
        )

    def _leave_enclosing(self: RunState) -> None:
        """This branch is about to unwind for a suspension: the attempts it runs inside (it
        is a step called from another step's body) are cut short with it (``nesting``)."""
        for inside in ENCLOSING.get():
            if inside.cut or inside.over:
                continue
            inside.cut = True
            inside.take_off()
            if inside.counted:
                inside.counted = False
                self._executing -= 1
                if self._executing == 0:
                    self._quiet.set()

    async def _taken_up(self: RunState, queued: Queued) -> bool:
        """Wait for a step thread to take up a sync attempt that queued for one. When the
        run is interrupted first (the engine stopping, a pause, the instance parking), the
        attempt is withdrawn if no thread has it yet: False, and its function never runs.
        A stopping engine must not start steps, least of all once it has given them up."""
        while not queued.started.done():
            if self._interrupt.is_set():
                if queued.withdraw():
                    return False
                await queued.started  # a thread has it already
                break
            interrupt: asyncio.Future[Any] = asyncio.ensure_future(self._interrupt.wait())
            either: set[asyncio.Future[Any]] = {queued.started, interrupt}
            try:
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            finally:
                interrupt.cancel()
        return True

    def _checked_result(
        self: RunState, value: Any, label: str, record: StepRecord, attempt: Attempt
    ) -> str:
        try:
            text = dump_json(value)
        except (TypeError, ValueError):
            raise self._fatal_step(
                record,
                attempt,
                "The execution of the Workflow instance was terminated, as the step "
                f'"{label}" returned a value which is not serialisable',
            ) from None
        size = utf8_size(text)
        if size > MAX_PAYLOAD_BYTES:
            raise WorkflowInternalError(
                f"Step {label} output is too large. Maximum allowed size is 1MiB."
            )
        try:
            self.count_stored(size)
        except FatalInstanceError as fatal:
            raise self._fatal_step(record, attempt, fatal.message) from None
        return text

    def _fatal_step(
        self: RunState, record: StepRecord, attempt: Attempt, message: str
    ) -> FatalInstanceError:
        """Record the attempt and its step as failed by ``message``, which fails the instance."""
        self._end_fatally(record, attempt, message)
        return self._fatal_instance(message)

    def _end_fatally(self: RunState, record: StepRecord, attempt: Attempt, message: str) -> None:
        """Record the attempt and its step as failed by the instance's failure, ``message``:
        its own, or one met inside its body, which would leave it running in the record. With
        no error state, the row is the instance's failure, which a replay raises as such
        (``failed_the_instance``)."""
        now = self.clock.now_ms()
        attempt.end, attempt.success = now, False
        attempt.error_name, attempt.error_message = "WorkflowFatalError", message
        record.status, record.end = "errored", now
        record.error_name, record.error_message = "WorkflowFatalError", message
        self.store.queue_step(self.pk, self.generation, record, now=now)
