"""Start a coroutine at once, in the calling task, and finish it later if it has to wait.

An ``async`` step body that never waits (a transformation, a check, a value at hand) is
over as soon as it starts. Run eagerly, such an attempt needs no deadline timer and no
"attempt started" write: there is no moment at which it could time out or be seen running.
A body that does wait is then driven to its end by :class:`Resumed`, from where it stopped,
exactly as ``await`` would have driven it (the same task, the same context, cancellation
thrown in at the point where it waits).
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["Resumed", "start"]


class Resumed:
    """The rest of a coroutine that has already yielded ``pending`` to its task."""

    __slots__ = ("_coro", "_pending")

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self._coro = coro
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self._coro, self._pending
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # a cancellation, thrown in where it waits
                try:
                    pending = coro.throw(exc)
                except StopIteration as finished:
                    return finished.value
            else:
                try:
                    pending = coro.send(sent)
                except StopIteration as finished:
                    return finished.value


def start(coro: Coroutine[Any, Any, Any]) -> tuple[bool, Any]:
    """Run ``coro`` up to its first wait: ``(True, result)`` if it finished there, else
    ``(False, rest)`` where ``await rest`` finishes it. Its exception, if it raises before
    waiting, propagates from here."""
    try:
        pending = coro.send(None)
    except StopIteration as finished:
        return True, finished.value
    return False, Resumed(coro, pending)
