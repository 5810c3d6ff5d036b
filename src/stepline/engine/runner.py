"""One run of one instance: ``run()`` replayed against the step cache, new steps executed.

A runner lives while its instance is running. Steps already recorded return their cached
result (or re-raise their cached error) without running; a new step's attempt is run, and
its outcome written in one transaction before ``run`` goes on. An attempt that waits on
something (or runs on a thread) is first announced ("attempt started", queued) and timed;
one that finishes without waiting has only its outcome written. A wait longer than the
engine's threshold *suspends* the instance: the runner writes the pending timers, unwinds
``run`` and ends; the scheduler replays it when due.

This module holds the run from start to end and ``step.do``'s replay and retries; the
attempt itself (:mod:`~stepline.engine.attempts`), the parking
(:mod:`~stepline.engine.parking`) and the waiting steps (:mod:`~stepline.engine.waits`) are
mixins of :class:`Runner`, in modules of their own.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from stepline.authoring.entrypoint import WorkflowEntrypoint, WorkflowEvent
from stepline.authoring.step import StepConfigInput, StepContext, WorkflowStep
from stepline.engine.attempts import StepAttempts
from stepline.engine.clock import elapsed_s
from stepline.engine.nesting import scoped_name
from stepline.engine.parking import Parking
from stepline.engine.run_signals import FatalInstanceError, StoreLost, Suspended
from stepline.engine.step_errors import (
    error_message,
    error_name,
    error_state,
    failed_the_instance,
    is_non_retryable,
    rebuild_error,
)
from stepline.engine.waits import WaitingSteps, take_value
from stepline.errors import (
    InvalidRequest,
    InvalidStepConfig,
    NonRetryableDelayError,
    StaleRunError,
    StepFailedError,
    StoreUnavailable,
)
from stepline.sizes import format_size
from stepline.step_config import config_text, parse_step_config
from stepline.store.records import RECOVERED, Attempt, InstanceRecord, StepRecord
from stepline.validation import check_step_name, dump_json, utf8_size

if TYPE_CHECKING:
    from stepline.engine.scheduler import Engine

__all__ = ["Runner"]

log = logging.getLogger("stepline.engine")
T = TypeVar("T")

_PRIMITIVES = frozenset((str, int, float, bool, type(None)))
"""Result types that are their own JSON round trip."""
_UNREACHABLE = "the store is unreachable"
_NON_RETRYABLE_MESSAGE = (
    "The execution of the Workflow instance was terminated, as a step threw an "
    "NonRetryableError and it was not handled"
)


class Runner(StepAttempts, Parking, WaitingSteps):
    """Drives one instance's ``run`` for as long as it stays in memory."""

    # Defaults, set on a runner only once they change: most runs never change the last four.
    _saving = 0
    """Step writes awaited by the run's branches right now."""
    _saved: asyncio.Future[None] | None = None
    """Resolved when ``_saving`` falls to 0, for a branch about to park that waits."""
    _parked: asyncio.Future[None] | None = None
    """Resolved once the suspension's write is over (done or failed)."""
    _fatal: FatalInstanceError | None = None
    """The fatal error raised into ``run``, kept in case its code swallows it."""
    _park_writing = False
    """The suspension's write has begun: a failure after it ends the run once it is over."""
    _lost = ""
    """Why the run was abandoned (``StoreLost`` raised into ``run``): the store was
    unreachable, or the engine's lease may have lapsed."""
    _started_steps = 0
    """Tasks started for declared steps (``@step.do``), counted as the run's moves."""
    _careful = False
    """The instance's last engine died while running it, and this run has not yet stored an
    attempt's start: the attempts it starts now are, before their code runs (``_attempt``)."""
    held_until = math.inf
    """Until when (``clock.elapsed_s()``) the engine's lease on the instance is sure to hold;
    the engine sets and renews it when it shares the database. Past it, another engine may
    have taken the instance over (this one was stopped, or its event loop blocked, for
    longer than a lease), and the run starts no more attempts: the other runs them."""

    def __init__(
        self,
        engine: Engine,
        instance: InstanceRecord,
        steps: list[StepRecord],
        workflow_cls: type[WorkflowEntrypoint],
        workflow_name: str,
        step_limit: int,
    ) -> None:
        self.engine = engine
        self.store = engine.store
        self.clock = engine.clock
        self.instance = instance
        self.pk = instance.pk
        self.generation = instance.generation
        self.workflow_cls = workflow_cls
        self.workflow_name = workflow_name
        self.step_limit = step_limit
        self.stored_bytes = utf8_size(instance.params)
        """What the instance has persisted, counted against ``engine.storage_limit``."""
        self.steps: dict[str, StepRecord] = {}
        self._next_seq = 1
        if steps:  # a replay (a new instance's run has none: its generators cost ~2 µs)
            self.steps = {s.key: s for s in steps if s.kind != "termination"}
            self.stored_bytes += sum(
                utf8_size(s.output) if s.output is not None else s.deferred_bytes or 0
                for s in steps
            )
            self._next_seq = max(s.seq for s in steps) + 1
        self._counters: dict[tuple[str, str], int] = {}
        self._reached: set[str] = set()
        self._do_calls = 0
        self._executing = 0
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._interrupt = asyncio.Event()
        self._event_arrived: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._event_queues: dict[str, tuple[list[StepRecord], asyncio.Lock]] = {}
        """The run's waits for events of each type, in the order they began (``seq``), and
        the lock a take holds: only the first takes (``WaitingSteps.wait_for_event``)."""
        self.pause_requested = False
        self._suspending = False
        self._draining = False
        self.task: asyncio.Task[None] | None = None
        if instance.wake_kind == RECOVERED:
            self._careful = True

    # -- the engine's handles ------------------------------------------------------------------
    def request_pause(self) -> None:
        self.pause_requested = True
        self._interrupt.set()

    def cancel_pause(self) -> None:
        # Taken back while the run parks it paused, the park finds the instance running
        # again in the store and parks it due at once instead (``Store.suspend``).
        self.pause_requested = False
        if not self._suspending:
            self._interrupt.clear()

    def drain(self) -> None:
        """The engine is stopping: let executing attempts finish and record, then park the
        instance at its next step boundary (or at once, if it is waiting)."""
        self._draining = True
        self._interrupt.set()

    def notify_event(self) -> None:
        if not self._event_arrived.done():
            self._event_arrived.set_result(None)

    # -- the run -------------------------------------------------------------------------------
    async def run(self) -> None:
        instance = self.instance
        event = WorkflowEvent(
            payload=json.loads(instance.params),
            timestamp=datetime.fromtimestamp(instance.created_on / 1000, UTC),
            instance_id=instance.id,
            workflow_name=self.workflow_name,
            schedule=None
            if instance.schedule_cron is None
            else {"cron": instance.schedule_cron, "scheduledTime": instance.scheduled_time},
        )
        running = asyncio.current_task()
        try:
            try:
                # Past the limit already (a wake took an event for a wait, or the limit was
                # lowered since): nothing to count, and no run.
                self.count_stored(0)
                entry = self.workflow_cls(env=self.engine.env)
                ran = entry.run(event, WorkflowStep(self))
                if not inspect.isawaitable(ran):  # written ``def run``: its steps never ran
                    raise TypeError(
                        f"{type(entry).__qualname__}.run returned {type(ran).__name__}, not "
                        "a coroutine: define it as async def run(self, event, step)"
                    )
                output = await ran
            except BaseExceptionGroup as group:
                raise self._unwrapped(group) from None
            await self._quiet.wait()
            self._raise_swallowed()
            if self.pause_requested:
                # Asked while the last step ran: the end is a step boundary too (§3.2), and
                # the instance pauses there; resumed, the replay returns at once.
                await self._suspend()
            try:
                text = dump_json(output)
            except (TypeError, ValueError) as exc:
                raise FatalInstanceError(
                    f"The workflow returned a value which is not JSON: {exc}"
                ) from None
            self.count_stored(utf8_size(text))
            await self._finish("complete", output=text)
        except Suspended:
            if self._parked is not None:
                # Unwound by another branch's suspension, which may still be writing: the
                # run ends once it is written, so that whoever looks for the next wake (the
                # scheduler, as this runner ends) finds it.
                await asyncio.wait({self._parked})
            if self._fatal is not None:  # failed meanwhile, in a branch not yet unwound
                await self._finish("errored", error=(self._fatal.name, self._fatal.message))
        except StaleRunError:
            pass
        except asyncio.CancelledError as cancelled:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                return  # the run itself is cancelled (terminated, stopped)
            # Let out by the workflow's own code (a task it awaited was cancelled): an
            # uncaught error of ``run`` like any other.
            escaped = _escaped(cancelled, "the workflow's")
            await self._finish("errored", error=self._instance_error(escaped))
        except StoreLost as lost:
            log.warning("instance %s left to recovery: %s", instance.id, lost)
        except FatalInstanceError as fatal:
            if self._parked is not None and self._park_writing:
                # A branch's park was already being written: its write first, then the end.
                await asyncio.wait({self._parked})
            await self._finish("errored", error=(fatal.name, fatal.message))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            if _closing(exc, running):
                raise
            # SystemExit too: a workflow that calls sys.exit() errors its instance. Let out,
            # it would end the engine's process, and every restart would replay it. And a
            # BaseException of the workflow's own, which would end the run's task alone.
            await self._finish("errored", error=self._instance_error(exc), cause=exc)

    def _unwrapped(self, group: BaseExceptionGroup[BaseException]) -> BaseException:
        """What a task group in workflow code let out, as the run ends on it: the engine's
        own signal, if the group holds one (a branch parked the instance, the run was lost
        or failed), decides as if raised alone; else the group is the run's error. (The
        run's own cancellation leaves a group as itself. ``cancelling()`` cannot tell: on
        Python 3.11 a group whose task failed leaves its parent's count raised.)"""
        signal = self._signal()
        if signal is not None:
            return signal
        stale = group.subgroup(StaleRunError)
        return group if stale is None else StaleRunError(str(stale.exceptions[0]))

    def _raise_swallowed(self) -> None:
        """``run`` returned, though the engine raised one of its own signals into it, which
        its code kept (``gather(..., return_exceptions=True)``, say): the signal decides."""
        signal = self._signal()
        if signal is not None:
            raise signal

    def _signal(self) -> BaseException | None:
        """The engine's own signal raised into the run, if any: it parks, is lost or failed."""
        if self._fatal is not None:
            return self._fatal  # ends the run (after a park already being written)
        if self._suspending:
            return Suspended()
        if self._lost:
            return StoreLost(self._lost)
        return None

    def _instance_error(self, exc: BaseException) -> tuple[str, str]:
        if is_non_retryable(exc) and not self.workflow_cls.preserve_non_retryable_error_message:
            return "WorkflowFatalError", _NON_RETRYABLE_MESSAGE
        return error_name(exc), error_message(exc)

    def _announce(self, record: StepRecord) -> None:
        self.store.queue_step(self.pk, self.generation, record, now=self.clock.now_ms())

    async def _save(self, record: StepRecord, now: int) -> None:
        # ``_durable`` inlined: this is every step's write, and its coroutine would be one
        # more frame for the writer's result to pass through.
        self._saving += 1
        try:
            await self.store.save_step(self.pk, self.generation, record, now=now)
        except StoreUnavailable:
            self._lost = _UNREACHABLE
            raise StoreLost(_UNREACHABLE) from None
        finally:
            self._saving -= 1
            if self._saved is not None and not self._saving:
                self._saved.set_result(None)
                self._saved = None

    async def _durable(self, write: Awaitable[T]) -> T:
        """Await a store write; an unreachable store ends the run (``StoreLost``), it is not
        an error of the workflow's."""
        try:
            return await write
        except StoreUnavailable:
            self._lost = _UNREACHABLE
            raise StoreLost(_UNREACHABLE) from None

    async def _finish(
        self,
        status: str,
        *,
        output: str | None = None,
        error: tuple[str, str] | None = None,
        cause: BaseException | None = None,
    ) -> None:
        """Record the end of the run; an error is logged, with the traceback of ``cause``
        (the exception ``run`` let out) so that the workflow's author can find the line."""
        try:
            await self.store.finish(
                self.pk,
                self.generation,
                status=status,
                output=output,
                error_name=None if error is None else error[0],
                error_message=None if error is None else error[1],
                steps=[],
                now=self.clock.now_ms(),
            )
        except (StaleRunError, StoreUnavailable):
            return  # moved on, or left to recovery with the store down
        if error is not None:
            log.info(
                "instance %s of %s errored: %s: %s",
                self.instance.id,
                self.workflow_name,
                error[0],
                error[1],
                exc_info=cause,
            )

    # -- step.do -------------------------------------------------------------------------------
    async def run_do(
        self,
        name: str,
        call: Callable[[StepContext], Any],
        config: StepConfigInput,
        *,
        is_async: bool,
    ) -> Any:
        self._guard()
        check_step_name(name)
        scoped, shown = self._scoped(name)
        count = self._occurrence("do", scoped)
        key = f"do:{count}:{scoped}"
        self._reached.add(key)
        label = f"{shown}-{count}"
        self._do_calls += 1
        if self._do_calls > self.step_limit:
            raise self._fatal_instance(
                f"The limit of {self.step_limit} steps has been reached. This limit can be "
                "changed in your worker configuration."
            )
        record = self.steps.get(key)
        if record is not None and record.status == "complete":
            if record.deferred_bytes is not None:
                await self._read_deferred(record)
            return take_value(record)
        if record is not None and record.status == "errored":
            if failed_the_instance(record):
                # The run that met this failure wrote no end: a suspension was being written
                # as it failed, and the instance, claimed again before the end (resumed, or
                # due at once), fenced it off; or its engine died between the two writes. The
                # failure decided: this run ends with it, past any ``try``, as that one would
                # have. Raised as the step's error, the workflow could catch it and go on.
                raise self._fatal_instance(record.error_message or "")
            raise rebuild_error(record)
        await self._at_boundary()
        try:
            resolved = parse_step_config(config, step=label)
        except InvalidStepConfig as exc:
            raise self._fatal_instance(exc.detail or error_message(exc)) from None
        if record is None:
            record = StepRecord(
                instance_pk=self.pk,
                key=key,
                seq=self._take_seq(),
                kind="do",
                name=label,
                status="running",
                start=self.clock.now_ms(),
                config=config_text(resolved),
            )
            self.steps[key] = record
        context_config = resolved.to_json(for_step=True)
        mocked, mock_value = self.engine.hooks.mocked_result(name)
        if mocked:

            async def call(_ctx: StepContext) -> Any:
                return mock_value

            is_async = True
        while True:
            failure = self._settle_dangling_attempt(record)
            if failure is None:
                if record.status == "waiting" and record.wake_at is not None:
                    await self._wait_until(record.wake_at)
                    record.status, record.wake_at = "running", None
                if elapsed_s() > self.held_until:
                    self._lost = "the engine's lease on it may have lapsed"
                    raise StoreLost(self._lost)
                number = len(record.attempts) + 1
                running = asyncio.current_task()
                attempt = Attempt(start=self.clock.now_ms())
                record.attempts.append(attempt)
                ctx = StepContext(name, count, number, context_config)
                try:
                    value = await self._attempt(
                        call, ctx, is_async, resolved.timeout_ms, record, attempt
                    )
                    text = self._checked_result(value, label, record, attempt)
                except FatalInstanceError as fatal:
                    if attempt.end is None:  # the instance failed inside its body
                        if not record.attempts or record.attempts[-1] is not attempt:
                            record.attempts.append(attempt)  # cut by a suspension: it ran
                        self._end_fatally(record, attempt, fatal.message)
                    raise
                except (Suspended, StaleRunError, StoreLost):
                    raise
                except asyncio.CancelledError as cancelled:
                    task = asyncio.current_task()
                    if task is None or task.cancelling():
                        raise  # the run itself is cancelled (terminated, stopped)
                    # Let out by the step's own code (a task it awaited was cancelled): a
                    # failure of the attempt like any other, named as it was.
                    failure = self._failed(attempt, _escaped(cancelled))
                except Exception as exc:
                    failure = self._failed(attempt, exc)
                except KeyboardInterrupt:
                    raise
                except BaseException as escaping:
                    if _closing(escaping, running):
                        raise
                    if isinstance(escaping, BaseExceptionGroup):
                        signal = self._unwrapped(escaping)  # steps in a step's task group
                        if signal is not escaping:
                            raise signal from None
                    # sys.exit() in a step, or a BaseException of the workflow's own: a
                    # failure, raised into ``run`` as an Exception. A step may run in a task
                    # of its own (declared, or gathered), and a task lets SystemExit out of
                    # the event loop (the engine's process would end), and dies of another
                    # (its instance left running for good).
                    escaped = StepFailedError(error_message(escaping), name=error_name(escaping))
                    failure = self._failed(attempt, escaped)
                else:
                    now = self.clock.now_ms()
                    attempt.end, attempt.success = now, True
                    record.status, record.end, record.output = "complete", now, text
                    await self._save(record, now)
                    record.output = None  # stored: this run never reads it again
                    if type(value) in _PRIMITIVES:  # a subclass (an enum) is what JSON makes it
                        return value
                    return json.loads(text)
            number = len(record.attempts)
            if is_non_retryable(failure) or number > resolved.retries.limit:
                await self._fail_step(record, failure)
                raise failure
            base_ms = None
            if resolved.retries.delay_fn is not None:
                failed_ctx = StepContext(name, count, number, context_config)
                try:
                    base_ms = await self._ask_delay(
                        resolved.retries.delay_fn, failed_ctx, failure, label
                    )
                except NonRetryableDelayError as delay_failure:
                    await self._fail_step(record, delay_failure)
                    raise delay_failure from None
            record.status = "waiting"
            record.wake_at = self.clock.now_ms() + resolved.retries.delay_after(number, base_ms)
            self.store.queue_step(self.pk, self.generation, record, now=self.clock.now_ms())

    async def _fail_step(self, record: StepRecord, failure: Exception) -> None:
        """Record the step as failed by ``failure``, which ``run`` then gets."""
        now = self.clock.now_ms()
        record.status, record.end = "errored", now
        record.error_name = error_name(failure)
        record.error_message = error_message(failure)
        record.error_class = error_state(failure)
        await self._save(record, now)

    def count_stored(self, size: int) -> None:
        """Count ``size`` more bytes of persisted state; past the engine's limit, the instance
        fails (``FatalInstanceError``) and nothing is counted."""
        limit = self.engine.storage_limit
        if self.stored_bytes + size > limit:
            raise self._fatal_instance(
                f"The Workflow instance exceeded the {format_size(limit)} storage limit"
            )
        self.stored_bytes += size

    def _fatal_instance(self, message: str) -> FatalInstanceError:
        """The error that fails the instance with ``message``; kept, so that ``run`` cannot
        swallow it: every later step raises it again, and so does ``run``'s return."""
        self._fatal = FatalInstanceError(message)
        return self._fatal

    def _scoped(self, name: str) -> tuple[str, str]:
        """``scoped_name``: past its bounds on nesting, the instance fails, as past its step
        limit. Raised into an outer step's body as an error, the refusal failed its attempt,
        and each retry, naming the steps inside it afresh (``#2``), ran into it again, and
        every step around it retried in turn."""
        try:
            return scoped_name(name)
        except InvalidRequest as refused:
            raise self._fatal_instance(refused.detail or error_message(refused)) from None

    def _guard(self) -> None:
        if self._fatal is not None:
            raise self._fatal
        if self._suspending:
            self._leave_enclosing()
            raise Suspended()

    def _occurrence(self, kind: str, name: str) -> int:
        count = self._counters.get((kind, name), 0) + 1
        self._counters[(kind, name)] = count
        return count

    def _take_seq(self) -> int:
        seq = self._next_seq
        self._next_seq += 1
        return seq


def _escaped(cancelled: asyncio.CancelledError, whose: str = "the step's") -> StepFailedError:
    """A cancellation that ``whose`` code let out, as the failure it is recorded as (and
    raised again as on a replay: a cancellation is no ``Exception`` to rebuild)."""
    return StepFailedError(
        str(cancelled) or f"{whose} code raised CancelledError: a task it awaited was cancelled",
        name="CancelledError",
    )


def _closing(exc: BaseException, running: asyncio.Task[Any] | None) -> bool:
    """Whether ``exc`` is the ``GeneratorExit`` of this coroutine being closed (its task was
    dropped unfinished, at the loop's end), which must go on out, rather than one that
    workflow code raised. A close comes from outside the task that ran the code (from none,
    or another task, whose step collected the garbage); workflow code raises in that task.
    Let out of a running task, it ended the task alone: its instance stayed running."""
    if not isinstance(exc, GeneratorExit):
        return False
    try:
        return asyncio.current_task() is not running
    except RuntimeError:  # no loop runs: closed by the garbage collector, after the loop
        return True
