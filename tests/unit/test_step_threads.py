"""The threads of sync step functions: given-up attempts do not take threads from the rest."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import threading
import time
import weakref

import pytest

from stepline import Stepline
from stepline.engine.step_threads import Loan, StepThreads


def _step_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"{name}_")]


async def _eventually(condition, seconds: float = 2.0) -> bool:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


async def test_runs_a_function_on_a_thread_and_hands_back_its_outcome():
    threads = StepThreads(2)
    try:
        assert await threads.run(lambda a, b: a + b, 2, 3) == 5
        with pytest.raises(KeyError):
            await threads.run({}.__getitem__, "missing")
        assert await threads.run(threading.current_thread) is not threading.current_thread()
    finally:
        threads.close()


async def test_work_cancelled_before_it_starts_never_runs():
    threads = StepThreads(1)
    release = threading.Event()
    ran = []
    try:
        busy = threads.run(release.wait, 5)
        queued = threads.run(ran.append, "ran")
        queued.cancel()
        release.set()
        assert await busy is True
        assert await threads.run(lambda: "next") == "next"
        assert ran == []
        assert threads.given_up == 0
    finally:
        threads.close()


async def test_a_given_up_function_is_replaced_while_it_runs_and_not_after():
    threads = StepThreads(1, name="given-up")
    release = threading.Event()
    try:
        hung = threads.run(release.wait, 10)
        await asyncio.sleep(0.05)  # it is running
        hung.cancel()
        await asyncio.sleep(0)
        assert threads.given_up == 1
        # The one thread is still in release.wait, yet the next function runs at once.
        assert await asyncio.wait_for(threads.run(lambda: "served"), 2) == "served"
        release.set()
        assert await _eventually(lambda: threads.given_up == 0)
        assert await threads.run(lambda: "still served") == "still served"
        # Back to its size once the given-up function returned.
        assert await _eventually(lambda: len(_step_threads("given-up")) <= 1)
    finally:
        release.set()
        threads.close()


async def test_a_loan_ends_when_the_work_it_was_lent_for_is_given_up():
    """The caller waits for the work no more: its thread counts again, though the work,
    hung, may never return (it was lent until then)."""
    threads = StepThreads(1, name="loan-given-up")
    release = threading.Event()
    loan = Loan()
    try:
        busy = threads.run(release.wait, 10)  # the caller's own thread, say
        hung = threads.run(release.wait, 10, lending=(loan,))
        queued = threads.run(release.wait, 10, lending=(loan,))
        await asyncio.sleep(0.05)  # the second runs on the thread lent, the third queues
        assert (threads.lent, loan.works) == (1, 2)
        hung.cancel()
        queued.cancel()
        await asyncio.sleep(0)
        assert (threads.lent, loan.works, threads.given_up) == (0, 0, 1)
        release.set()
        assert await busy is True
        assert await _eventually(lambda: threads.given_up == 0)
        assert (threads.lent, loan.works) == (0, 0)  # repaid once, not again at the end
    finally:
        release.set()
        threads.close()


async def test_close_cancels_what_has_not_started_and_refuses_more():
    threads = StepThreads(1)
    release = threading.Event()
    busy = threads.run(release.wait, 5)
    queued = threads.run(lambda: "never")
    await asyncio.sleep(0.05)
    threads.close()
    with pytest.raises(asyncio.CancelledError):
        await queued
    with pytest.raises(RuntimeError, match="shut down"):
        threads.run(lambda: None)
    release.set()
    assert await busy is True


def test_its_threads_do_not_keep_the_process_alive():
    async def start_one() -> None:
        threads = StepThreads(1, name="daemon")
        threads.run(time.sleep, 60)
        await asyncio.sleep(0.01)
        threads.close()

    asyncio.run(start_one())
    assert _step_threads("daemon")
    assert all(t.daemon for t in _step_threads("daemon"))


async def test_work_that_queues_for_a_thread_says_when_one_takes_it_up():
    threads = StepThreads(1)
    release = threading.Event()
    try:
        busy, at_once = threads.run_queued(release.wait, 5)
        assert at_once is None  # a thread took it at once
        queued, waiting = threads.run_queued(lambda: "second")
        assert waiting is not None
        await asyncio.sleep(0.05)
        assert not waiting.started.done()
        release.set()
        await asyncio.wait_for(waiting.started, 2)
        assert not waiting.withdraw()  # started: too late to take back
        assert await queued == "second"
        assert await busy is True
    finally:
        threads.close()


async def test_queued_work_withdrawn_never_runs():
    threads = StepThreads(1)
    release = threading.Event()
    ran: list[str] = []
    try:
        busy, _ = threads.run_queued(release.wait, 5)
        queued, waiting = threads.run_queued(ran.append, "withdrawn")
        assert waiting is not None and waiting.withdraw()
        release.set()
        assert await busy is True
        after, _ = threads.run_queued(ran.append, "after")
        await asyncio.wait_for(after, 2)
        assert ran == ["after"] and queued.cancelled()
    finally:
        threads.close()


async def test_stepline_takes_the_number_of_step_threads(tmp_path):
    async with Stepline(f"sqlite:///{tmp_path / 's.sqlite3'}", step_threads=3) as stepline:
        assert stepline.engine.step_threads.size == 3


REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


async def test_a_function_runs_in_its_submitters_context():
    """As ``asyncio.to_thread`` runs one: a sync step saw none of the workflow's context
    variables (a request's id, a tracing span), nor the step whose body it is."""
    threads = StepThreads(1)
    try:
        REQUEST_ID.set("r-1")
        assert await threads.run(REQUEST_ID.get) == "r-1"
        REQUEST_ID.set("r-2")
        assert await threads.run(REQUEST_ID.get) == "r-2"
    finally:
        threads.close()


class _Result:
    """A function's result, to be seen gone (``weakref``)."""


async def test_a_thread_keeps_no_result_once_it_is_handed_back():
    """The work a new thread was started for was held by the thread's arguments for as long
    as the thread lived: its function, and its result."""
    threads = StepThreads(1)
    made: list[weakref.ref[_Result]] = []

    def make() -> _Result:
        result = _Result()
        made.append(weakref.ref(result))
        return result

    try:
        assert isinstance(await threads.run(make), _Result)
        await asyncio.sleep(0.05)  # the thread waits for more
        gc.collect()
        assert made[0]() is None
    finally:
        threads.close()
