"""What the SQLite writer writes, and how one batch of it runs on the connection.

A write is a function of the connection, or one of the values below. Each function runs
inside its own savepoint (so one failing operation does not undo the others); a
:class:`BeforeCommit` hands its caller the result as soon as it ran, and a batch of only
:class:`NoSync` writes commits without waiting for the disk. A queued write that a later one
of the same key supersedes in the batch is dropped (:func:`without_superseded`). Each
caller's outcome is delivered to its future on its own loop (:func:`deliver`).

Step writes are :class:`FencedWrite` values rather than functions: one statement that only
writes while the instance is still at the runner's generation. Consecutive ones run as one
statement of many rows (their :class:`ManyRows` form), or as a single ``executemany`` when
they have none or are few; only when fewer rows changed than were sent does the writer look
up which were fenced out. This keeps the writer thread's calls into SQLite, and so its
hand-offs of the GIL, to a few per batch: ``executemany`` still steps once, and gives the GIL
up and takes it back once, per row, and each take waits for the event loop's thread to let go.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stepline.errors import StaleRunError
from stepline.store.sqlite_errors import as_store_error
from stepline.store.sqlite_rows import value_rows

__all__ = [
    "BeforeCommit",
    "FencedWrite",
    "ManyRows",
    "NoSync",
    "deliver",
    "run_fenced",
    "run_fenced_apart",
    "run_operation",
    "without_superseded",
]

log = logging.getLogger("stepline.store.sqlite")


@dataclass(slots=True, eq=False)
class FencedWrite:
    """``sql`` with ``params`` changes one row if instance ``pk`` is at ``generation``.

    Not frozen, though nothing changes one once made: every step's write makes one, and a
    frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``, a few
    times the cost of a plain one (about 1 µs a write here)."""

    sql: str
    params: tuple[Any, ...]
    pk: int
    generation: int
    quiet: bool = False
    """A queued write whose run has moved on is dropped without complaint."""
    many: ManyRows | None = None
    """The same write's form for many rows, to run a batch's writes as one statement."""


@dataclass(frozen=True, slots=True)
class ManyRows:
    """The form of a :class:`FencedWrite`'s statement that writes many rows at once:
    ``template`` with ``{rows}`` for that many rows of ``width`` parameters each. A row of
    ``pad`` changes nothing (it fills a statement up to a size whose text is reused)."""

    template: str
    width: int
    pad: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class BeforeCommit:
    """An operation whose caller gets its result as soon as it ran, before the commit.

    For a write the caller may go on from before it is durable, because every later write of
    that caller queues behind it and so commits with it or after it: a crash before the commit
    loses the later writes too, and a replay finds things as they were. (A commit that fails
    while the process lives on is logged; the caller is not told.)
    """

    operation: Callable[[sqlite3.Connection], Any]


@dataclass(frozen=True, slots=True)
class NoSync:
    """A write whose loss in a power failure does no harm (a lease: lost, the instance is just
    claimed again). A batch of nothing else commits without waiting for the disk; it becomes
    durable with the next commit that does wait, as that one syncs the whole WAL."""

    operation: Callable[[sqlite3.Connection], Any]


def run_operation(
    conn: sqlite3.Connection, item: tuple[Any, Any, Any, Any], *, early: bool
) -> tuple[Any, Any, BaseException | None, Any]:
    """Run one write in its own savepoint; a :class:`BeforeCommit` result goes back at once
    when ``early`` (the commit is on another thread)."""
    operation, future, loop, _ = item
    before_commit = isinstance(operation, BeforeCommit)
    early = early and before_commit
    call = operation.operation if isinstance(operation, BeforeCommit | NoSync) else operation
    conn.execute("SAVEPOINT op")
    try:
        result = call(conn)
    except BaseException as exc:  # handed back to the caller, not lost
        if not conn.in_transaction:
            # SQLite rolled the whole transaction back (a full disk, an I/O error): the
            # batch's other writes are gone too, and all fail with this error.
            raise
        conn.execute("ROLLBACK TO op")
        conn.execute("RELEASE op")
        if future is None:
            log.error("queued write failed: %r", exc)
        return future, None, exc, loop
    conn.execute("RELEASE op")
    if early and future is not None:
        # Delivered now; the batch's delivery after the commit skips a future already done.
        loop.call_soon_threadsafe(deliver, [(future, result, None)])
    return future, result, None, loop


def run_fenced_apart(
    conn: sqlite3.Connection, items: list[Any]
) -> list[tuple[Any, Any, BaseException | None, Any]]:
    """:func:`run_fenced`; when a write holds a value the driver cannot bind (it raises
    before SQLite runs the statement), each write is run on its own instead, so that only
    the writes that cannot be written fail, not the whole group commit. (Running one again
    is harmless: a fenced write sets the same columns to the same values.)"""
    try:
        return run_fenced(conn, items)
    except sqlite3.Error:
        raise
    except Exception:  # sorted out write by write below
        pass
    outcomes: list[tuple[Any, Any, BaseException | None, Any]] = []
    for item in items:
        try:
            outcomes.extend(run_fenced(conn, [item]))
        except sqlite3.Error:
            raise
        except Exception as error:  # this write's failure, handed back
            log.error("write failed: %s", error)
            outcomes.append((item[1], None, error, item[2]))
    return outcomes


def run_fenced(
    conn: sqlite3.Connection, items: list[Any]
) -> list[tuple[Any, Any, BaseException | None, Any]]:
    writes: list[FencedWrite] = [item[0] for item in items]
    many = writes[0].many
    if many is None or len(writes) < _MANY_MIN:
        changed = conn.executemany(writes[0].sql, [w.params for w in writes]).rowcount
    else:
        changed = 0
        for start in range(0, len(writes), _MANY_MAX):
            part = writes[start : start + _MANY_MAX]
            size = _padded(len(part))
            params = [v for w in part for v in w.params]
            params.extend(many.pad * (size - len(part)))
            changed += conn.execute(_many_sql(many.template, many.width, size), params).rowcount
    stale: set[int] = set()
    if changed != len(writes):
        # Some instance moved on (terminated, restarted, claimed again): find which.
        pks = sorted({w.pk for w in writes})
        marks = ", ".join("?" * len(pks))
        current = dict(
            conn.execute(f"SELECT pk, generation FROM instances WHERE pk IN ({marks})", pks)
        )
        stale = {i for i, w in enumerate(writes) if current.get(w.pk) != w.generation}
    outcomes: list[tuple[Any, Any, BaseException | None, Any]] = []
    for i, (write, future, loop, _) in enumerate(items):
        if i in stale and not write.quiet:
            error = StaleRunError(
                f"instance {write.pk} moved on from generation {write.generation}"
            )
            outcomes.append((future, None, error, loop))
        else:
            outcomes.append((future, None, None, loop))
    return outcomes


_MANY_MIN = 4
"""Fewer fenced writes than this go to ``executemany``, more to their many-row form."""
_MANY_MAX = 256
"""Rows of one many-row statement (at 18 parameters a row, well under SQLite's 32,766)."""


def _padded(count: int) -> int:
    """The size a many-row statement of ``count`` rows is filled up to: a power of two, so
    that a handful of statement texts serve every batch and stay in the statement cache."""
    size = 8
    while size < count:
        size *= 2
    return size


@functools.lru_cache(maxsize=64)
def _many_sql(template: str, width: int, rows: int) -> str:
    return template.format(rows=value_rows(width, rows))


def without_superseded(batch: list[Any]) -> list[Any]:
    """Drop queued (unawaited) writes that a later write of the same key replaces."""
    last: dict[object, int] = {}
    for index, item in enumerate(batch):
        if item[3] is not None:
            last[item[3]] = index
    if len(last) == len(batch):
        return batch
    return [
        item
        for index, item in enumerate(batch)
        if item[3] is None or item[1] is not None or last[item[3]] == index
    ]


def deliver(items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, exc in items:
        if future.done():
            continue
        if exc is None:
            future.set_result(result)
        else:
            future.set_exception(as_store_error(exc))
