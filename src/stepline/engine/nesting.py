"""Steps called from another step's body: the attempts a branch of the run is inside.

A step's body may call the step API itself (``step.do``, ``step.sleep``, ...). When such an
inner step suspends the instance (a long wait, a pause, the engine stopping), the outer
step's attempt cannot finish: the suspension unwinds it with the rest of ``run``. The outer
step is not complete, and its interrupted attempt is no attempt at all (not a failure, no
retry spent): the replay enters its body again, where the inner steps it finished return
their results without running again.

A step inside another's body is named within it: ``fetch`` in the body of ``process-2`` is
``process-2/fetch``, its first ``process-2/fetch-1``, counted apart from any other ``fetch``
of the run. A finished outer step is not entered on replay, so the steps inside it must not
share counts with those outside: ``fetch`` in a loop's second ``process``, replayed after the
first ``process`` had finished, took the first one's ``fetch-1`` and returned its result.
Each attempt of the outer step names them apart too (its second ``process-2#2/fetch-1``): a
retry runs its body afresh, in memory or replayed after a backoff that parked the instance
alike. (Counted on across the attempts, the replay of a second attempt took the first one's
``fetch-1``, which a retry in memory had run again as ``fetch-2``: its stored error, or its
older result.) An attempt cut short is no attempt: its replay has its number, and its names.

That is the name shown (in the describe view, and to a restart from a step). The step's key
joins scope and name with ``\x1f`` instead: no name given in code may hold a control
character, so the ``fetch`` inside ``process-2`` is not a step named ``process-2/fetch`` at
the top of ``run``, which took its stored result on a replay. Full names add up, each step's
within all it is inside, and are bounded (``STEP_FULL_NAME_MAX_BYTES``): past PostgreSQL's
limit on an index entry, no write of the instance's steps could succeed.

The runner keeps, for the branch that runs (a context variable, so that a task the body
starts inherits it), the attempts it runs inside. A branch about to unwind for a suspension
*cuts* them: their attempts leave their steps' records before the suspension writes them,
and they stop counting as executing, which the suspension waits for, as they wait for it.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from typing import TYPE_CHECKING

from stepline.errors import InvalidRequest
from stepline.store.records import Attempt, StepRecord
from stepline.validation import (
    MAX_STEP_DEPTH,
    STEP_FULL_NAME_MAX_BYTES,
    shown_step_name,
    utf8_size,
)

if TYPE_CHECKING:
    from stepline.engine.step_threads import Loan

__all__ = ["ENCLOSING", "KEY_SEPARATOR", "Enclosing", "key_label", "scoped_name", "shown_form"]

KEY_SEPARATOR = "\x1f"
"""Between a scope and the name within it in a step's key (``/`` where the name is shown)."""


class Enclosing:
    """An attempt whose body is running; the steps it calls are inside it."""

    __slots__ = (
        "attempt",
        "counted",
        "cut",
        "loan",
        "number",
        "on_thread",
        "over",
        "record",
        "scope",
    )

    def __init__(
        self, record: StepRecord, attempt: Attempt, number: int, *, on_thread: bool = False
    ) -> None:
        self.record = record
        self.attempt = attempt
        self.number = number
        self.on_thread = on_thread
        """Its body is a sync function, which runs on a step thread: cleared once it has
        returned (given up, it may run on, and it stays set)."""
        self.loan: Loan | None = None
        """Its thread, lent while sync work inside it (a step's attempt, a delay function)
        is on the step threads: its body waits for that work (see ``_lending``)."""
        self.scope = record.name if number == 1 else f"{record.name}#{number}"
        """What the steps inside it are named within, as shown: its step's label, and which
        attempt this is after the first (``process-2``, ``process-2#2``)."""
        self.counted = False
        """Counted among the runner's executing attempts."""
        self.cut = False
        """Cut short by a suspension that a step inside it began: taken off its record."""
        self.over = False
        """Its body has ended (a task it started may still call steps)."""

    def key_scope(self) -> str:
        """``scope`` as keys hold it, made from its step's key only when a step is called
        inside it."""
        label = key_label(self.record)
        return label if self.number == 1 else f"{label}#{self.number}"

    def take_off(self) -> None:
        """Take the attempt off its step's record: it is no attempt."""
        attempts = self.record.attempts
        if attempts and attempts[-1] is self.attempt:
            attempts.pop()

    def put_back(self) -> None:
        """Its body ended on its own before the suspension began: the attempt stands."""
        self.cut = False
        attempts = self.record.attempts
        if not attempts or attempts[-1] is not self.attempt:
            attempts.append(self.attempt)


def key_label(record: StepRecord) -> str:
    """A ``step.do``'s label in its key's form, from its key (``do:<count>:<full name>``): its
    full name, a dash and its count (``process-2``)."""
    _, count, full_name = record.key.split(":", 2)
    return f"{full_name}-{count}"


def shown_form(full_name: str) -> str:
    """A full name in its key's form as it is shown: ``process-2/fetch``."""
    return full_name.replace(KEY_SEPARATOR, "/")


ENCLOSING: ContextVar[tuple[Enclosing, ...]] = ContextVar("stepline_enclosing", default=())
"""The attempts that the current branch runs inside, outermost first."""


def scoped_name(name: str) -> tuple[str, str]:
    """``name`` as a step called in this branch is named, in its key and as shown: within the
    step whose body runs it (shown ``process-2/fetch``, in its second attempt
    ``process-2#2/fetch``), or as it is at the top of ``run``. A step inside more than
    ``MAX_STEP_DEPTH`` others, or whose full name is over ``STEP_FULL_NAME_MAX_BYTES``, is
    refused (``InvalidRequest``, which fails the instance: ``Runner._scoped``): so bounded,
    its key fits PostgreSQL's index."""
    enclosing = ENCLOSING.get()
    if not enclosing:
        return name, name
    if len(enclosing) > MAX_STEP_DEPTH:
        raise InvalidRequest(
            f"step {shown_step_name(name)} is inside {len(enclosing)} steps, each in the "
            f"body of the one before: a step may be inside at most {MAX_STEP_DEPTH}"
        )
    inside = enclosing[-1]
    key = f"{inside.key_scope()}{KEY_SEPARATOR}{name}"
    shown = f"{inside.scope}/{name}"
    # Without the outer steps' attempt numbers, so that a retry of one ("#2") does not refuse
    # what its first attempt ran; with them, a key is bounded by the depth.
    plain = _ATTEMPT_NUMBER.sub("", key)
    size = utf8_size(plain)  # the shown name's too: each separator is one byte
    if size > STEP_FULL_NAME_MAX_BYTES:
        raise InvalidRequest(
            f"step {shown_step_name(name)} is inside {len(enclosing)} steps, and its full "
            f"name {shown_step_name(shown_form(plain))} is {size:,} bytes of "
            f"UTF-8 (not counting attempt numbers): over the {STEP_FULL_NAME_MAX_BYTES:,} a "
            "full name may take. It holds the names of the steps it is inside, which add up: "
            "give them shorter names, or call fewer of them inside each other"
        )
    return key, shown


_ATTEMPT_NUMBER = re.compile(f"#[0-9]+(?={KEY_SEPARATOR})")
"""An outer step's attempt number in a key: a label (a name, ``-`` and a count) is all that
comes before a separator, so a ``#`` and digits there are one."""
