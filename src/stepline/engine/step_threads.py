"""The threads that run synchronous step functions (and delay functions).

Python cannot stop a thread. An attempt given up while its function still runs on one (it
timed out, or its instance was terminated) keeps that thread until the function returns,
which for a call without a timeout of its own may be never. With a fixed pool, a handful of
such calls would leave every later sync step waiting for a thread, and timing out there, in
every instance of the engine. So each thread given up this way is replaced for as long as its
function runs: ``size`` threads are always there for attempts that are still wanted.

A function may itself wait for a step: a sync step's body that calls ``step.do`` (through
``asyncio.run_coroutine_threadsafe``) holds its thread until the inner step is done, and an
inner sync step needs a thread too. With every thread held by such bodies, the inner steps
would queue for ever, and their callers with them. So a caller that waits this way *lends*
its thread (a :class:`Loan`, passed with the sync work inside it): one more thread may run
while that work is on the threads, and however many callers wait, ``size`` threads are left
to take up the queue. The loan ends as the work does, on its thread, before that thread
takes up more, or as its attempt gives it up: a body that goes on working once its wait is
over counts again.

The threads are daemons: a function that never returns does not keep the process from
exiting once the engine has stopped.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from stepline.engine.step_errors import error_message
from stepline.errors import StepFailedError

__all__ = ["DEFAULT_STEP_THREADS", "Loan", "Queued", "StepThreads"]

DEFAULT_STEP_THREADS = 32


class Loan:
    """The thread of a function that waits for sync work inside it (a step's body, for the
    steps it calls): lent while any such work is on the threads or queued for one."""

    __slots__ = ("ended", "works")

    def __init__(self) -> None:
        self.works = 0
        """The work it waits for, not yet ended (under the threads' lock)."""
        self.ended = False
        """Its function was given up: its thread is counted as such, and lent no more."""


class _Work:
    __slots__ = ("args", "context", "fn", "future", "given_up", "loans", "started", "waited")

    def __init__(
        self, fn: Callable[..., Any], args: tuple[Any, ...], loans: tuple[Loan, ...]
    ) -> None:
        self.fn = fn
        self.args = args
        self.loans = loans
        """The threads lent while it is not ended nor given up: its callers', which wait for
        it (under the threads' lock; emptied once repaid)."""
        self.context = contextvars.copy_context()
        """The submitter's, as ``asyncio.to_thread`` runs a function in: the workflow's own
        context variables (a request's id, a tracing span), and the step whose body it is,
        which names the steps it calls (:func:`~stepline.engine.nesting.scoped_name`)."""
        self.future: Future[Any] = Future()
        self.given_up = False
        self.started: asyncio.Future[None] | None = None
        """Set when the work had to queue for a thread: resolved as one takes it up."""
        self.waited: asyncio.Future[Any] | None = None
        """The loop's future for it. Its cancellation reaches ``future`` only on the loop's
        next turn; a thread that takes the work up first looks at it too."""


class Queued:
    """Work waiting for a free thread: ``started`` resolves as one takes it up."""

    __slots__ = ("_work", "started")

    def __init__(self, work: _Work, started: asyncio.Future[None]) -> None:
        self._work = work
        self.started = started

    def withdraw(self) -> bool:
        """Take the work back before any thread starts it: True when it never will."""
        return self._work.future.cancel()


_STOP = object()
"""Put on the queue by ``close``: the thread that takes it ends."""


class StepThreads:
    """Up to ``size`` threads at work for attempts still awaited, plus one for each attempt
    given up whose function is still running, and one for each function lent while it waits
    for a step inside it."""

    def __init__(self, size: int, name: str = "stepline-step") -> None:
        if size < 1:
            raise ValueError("step threads: at least 1")
        self.size = size
        self._name = name
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = 0
        self._idle = 0
        """Threads blocked on the queue that no submitted work has yet been counted for."""
        self._given_up = 0
        self._lent = 0
        self._closed = False

    @property
    def given_up(self) -> int:
        """Functions still running for attempts that no longer wait for them."""
        return self._given_up

    @property
    def lent(self) -> int:
        """Functions that wait for work inside them on the threads, each lending its thread."""
        return self._lent

    def run(
        self, fn: Callable[..., Any], *args: Any, lending: tuple[Loan, ...] = ()
    ) -> asyncio.Future[Any]:
        """``fn(*args)`` on a thread; the future is the loop's. Cancelling it before the
        function starts means it never does; after, the thread is given up and replaced.
        ``lending``: the functions on the threads that wait for it, whose threads are lent
        until it ends."""
        return self.run_queued(fn, *args, lending=lending)[0]

    def run_queued(
        self, fn: Callable[..., Any], *args: Any, lending: tuple[Loan, ...] = ()
    ) -> tuple[asyncio.Future[Any], Queued | None]:
        """:meth:`run`, and when every thread is busy, a :class:`Queued` whose ``started``
        resolves once a thread takes the function up (None: one took it at once). A step's
        timeout counts from there: the time it queued is not the function's."""
        loop = asyncio.get_running_loop()
        work = _Work(fn, args, lending)
        with self._lock:
            if self._closed:
                raise RuntimeError("the engine's step threads are shut down")
            self._borrow(work.loans)
            if self._idle:
                self._idle -= 1
                self._queue.put(work)
            elif self._threads < self._room():
                self._start_thread(work)
            else:
                work.started = loop.create_future()
                self._queue.put(work)
        waited = work.waited = asyncio.wrap_future(work.future)
        waited.add_done_callback(lambda done: self._on_waited(done, work))
        return waited, None if work.started is None else Queued(work, work.started)

    def close(self) -> None:
        """No more work: what has not started never will; what runs is left to finish."""
        with self._lock:
            self._closed = True
            threads = self._threads
        while True:
            try:
                work = self._queue.get_nowait()
            except queue.Empty:
                break
            if work is not _STOP:
                work.future.cancel()
                with self._lock:
                    self._repay(work)
        for _ in range(threads):
            self._queue.put(_STOP)

    def _on_waited(self, waited: asyncio.Future[Any], work: _Work) -> None:
        # ``wrap_future`` has already tried to cancel the work; a running one cannot be.
        if not waited.cancelled():
            return
        with self._lock:
            # Its callers wait for it no more, though it may run on (for ever, if it hangs):
            # a body that goes on once its inner step timed out counts for its thread again.
            self._repay(work)
            if not work.future.running() or work.given_up:
                return
            work.given_up = True
            self._given_up += 1
            if not self._queue.empty() and not self._idle and not self._closed:
                self._start_thread()

    def end_loan(self, loan: Loan) -> None:
        """The function of ``loan`` was given up while work it waits for is on the threads:
        counted as given up, its thread is lent no more, or that work ran for no thread."""
        with self._lock:
            if not loan.ended and loan.works > 0:
                self._lent -= 1
            loan.ended = True

    def _borrow(self, loans: tuple[Loan, ...]) -> None:
        """Under ``_lock``: a function waits for work more on each of ``loans``."""
        for loan in loans:
            loan.works += 1
            if loan.works == 1 and not loan.ended:
                self._lent += 1

    def _repay(self, work: _Work) -> None:
        """Under ``_lock``: ``work``, which its callers lent their threads for, has ended or
        is given up. Once: the loans are emptied."""
        for loan in work.loans:
            loan.works -= 1
            if loan.works == 0 and not loan.ended:
                self._lent -= 1
        work.loans = ()

    def _room(self) -> int:
        """How many threads may run (under ``_lock``)."""
        return self.size + self._given_up + self._lent

    def _start_thread(self, first: _Work | None = None) -> None:
        """A thread more, which takes up ``first`` before anything queued."""
        self._threads += 1
        thread = threading.Thread(
            target=self._work,
            args=([first],),  # taken out of the list: the thread's arguments outlive it
            name=f"{self._name}_{self._threads}",
            daemon=True,
        )
        thread.start()

    def _work(self, handed: list[_Work | None]) -> None:
        work: Any = handed.pop()
        while True:
            if work is None:
                with self._lock:
                    if self._threads > self._room():
                        self._threads -= 1  # a given-up or lent function came back: one too many
                        return
                    try:
                        work = self._queue.get_nowait()
                    except queue.Empty:
                        self._idle += 1  # until a submit counts this thread as taken
                if work is None:
                    work = self._queue.get()
                if work is _STOP:
                    with self._lock:
                        self._threads -= 1
                    return
            self._take_up(work)
            work = None

    def _take_up(self, work: _Work) -> None:
        if work.waited is not None and work.waited.cancelled():
            work.future.cancel()  # cancelled before it started: it never does
        if not work.future.set_running_or_notify_cancel():
            with self._lock:
                self._repay(work)
            return
        if work.started is not None:
            _tell_started(work.started)
        try:
            result = work.context.run(work.fn, *work.args)
        except StopIteration as exc:
            # An asyncio future refuses a StopIteration (``wrap_future`` would drop it, and
            # the attempt wait for ever): raised as a coroutine's would be (PEP 479).
            error = RuntimeError("function raised StopIteration")
            error.__cause__ = exc
            work.future.set_exception(error)
        except GeneratorExit as exc:
            # Awaited from an asyncio future, a GeneratorExit ends the coroutine that awaits
            # it as a close would ("coroutine ignored GeneratorExit" at its next await): the
            # failure is carried under its name instead, as a replay rebuilds it.
            work.future.set_exception(StepFailedError(error_message(exc), name="GeneratorExit"))
        except BaseException as exc:
            work.future.set_exception(exc)
        else:
            work.future.set_result(result)
        with self._lock:
            # Before this thread takes up more: its callers' threads count again at once.
            self._repay(work)
            if work.given_up:
                self._given_up -= 1


def _tell_started(started: asyncio.Future[None]) -> None:
    """From a step thread: resolve ``started`` on its loop."""
    try:
        started.get_loop().call_soon_threadsafe(_resolve, started)
    except RuntimeError:  # the loop has closed: nobody waits
        pass


def _resolve(started: asyncio.Future[None]) -> None:
    if not started.done():
        started.set_result(None)
