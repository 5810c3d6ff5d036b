"""A step's full name (its name within all the steps it is inside) is bounded in bytes.

PostgreSQL indexes a step's key, and refuses an index entry over 2,704 bytes: a step nested
deep enough made every write of its instance fail, and the instance stayed running for good.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from stepline import Stepline, WorkflowEntrypoint
from stepline.engine.nesting import ENCLOSING, KEY_SEPARATOR, Enclosing, scoped_name
from stepline.errors import InvalidRequest
from stepline.step_config import MAX_RETRY_LIMIT
from stepline.store.records import Attempt, StepRecord
from stepline.validation import (
    MAX_STEP_DEPTH,
    STEP_FULL_NAME_MAX_BYTES,
    STEP_SHOWN_NAME_MAX_BYTES,
)
from tests.engine.helpers import finished

ONE_ATTEMPT = {"retries": {"limit": 0}}
"""Each level fails at its first error: retried, every level would run the ones inside again."""


class CallsEachInTheOneBefore(WorkflowEntrypoint):
    """Steps named ``event.payload`` but its last (one attempt each), each called in the body
    of the one before; the innermost sleeps a minute, named the last, and returns "bottom"."""

    async def run(self, event, step):
        async def level(names: list[str]) -> str:
            name, *inner = names
            if not inner:
                until = int(event.timestamp.timestamp() * 1000) + 60_000
                await step.sleep_until(name, until)  # a key's longest prefix: sleep:@<ms>:1:
                return "bottom"

            async def body() -> str:
                return await level(inner)

            return await step.do(name, body, config=ONE_ATTEMPT)

        return await level(event.payload)


def names_adding_up_to(size: int) -> list[str]:
    """Seven steps' names of 250 random letters, and a last one of random 4-byte characters
    (and letters) that makes its full name ``size`` bytes of UTF-8 (each outer step adds its
    name, its count ``-1`` and a separator)."""
    outer = ["".join(random.choices("abcdefghijklmnopqrstuvwxyz", k=250)) for _ in range(7)]
    left = size - sum(len(name) + len("-1/") for name in outer)
    wide, letters = divmod(left, 4)
    last = "".join(chr(random.randint(0x1F300, 0x1F5FF)) for _ in range(wide)) + "z" * letters
    return [*outer, last]


async def test_a_full_name_at_the_bound_is_kept_and_one_byte_more_is_refused_at_the_call(
    stepline: Stepline,
):
    """On PostgreSQL too: the longest key, a sleep's, with a full name at the bound fits the
    index. One byte more raised nothing, and was kept (or, deeper, failed every write)."""
    workflow = await stepline.register("calls-each-in-the-one-before", CallsEachInTheOneBefore)

    at_bound = names_adding_up_to(STEP_FULL_NAME_MAX_BYTES)
    kept = await finished(await workflow.create(params=at_bound))
    assert kept["status"] == "complete", kept.get("error")
    assert kept["output"] == "bottom"
    deepest = kept["steps"][-1]["name"]
    assert len(deepest.encode()) == STEP_FULL_NAME_MAX_BYTES + len("-1")

    view = await finished(await workflow.create(params=names_adding_up_to(2049)))
    assert view["status"] == "errored"
    assert view["error"]["name"] == "WorkflowFatalError"
    message = view["error"]["message"]
    assert "is inside 7 steps" in message
    assert "is 2,049 bytes of UTF-8 (not counting attempt numbers): over the 2,048" in message
    assert "names of the steps it is inside, which add up" in message
    assert not [s for s in view["steps"] if s["type"] == "sleep"]  # refused at the call


class NestsAsDeepAsItIsLet(WorkflowEntrypoint):
    """Steps named ``event.payload``, each called in the body of the one before, each
    retried once when its body fails."""

    async def run(self, event, step):
        async def level(names: list[str]) -> str:
            if not names:
                return "bottom"

            async def body() -> str:
                try:
                    return await level(names[1:])
                except InvalidRequest:  # the refusal is no error that the code may handle
                    return "refused and carried on"

            return await step.do(names[0], body, config={"retries": {"limit": 1, "delay": 1}})

        return await level(event.payload)


async def test_twelve_steps_of_250_letters_each_fail_the_instance_at_the_ninth_call(
    stepline: Stepline,
):
    """As deep as this, on PostgreSQL, each write of the instance failed ("index row size
    2808 exceeds btree version 4 maximum 2704"), and it stayed running for good."""
    workflow = await stepline.register("nests-as-deep-as-it-is-let", NestsAsDeepAsItIsLet)
    names = ["".join(random.choices("abcdefghijklmnopqrstuvwxyz", k=250)) for _ in range(12)]

    view = await finished(await workflow.create(params=names))

    assert view["status"] == "errored"
    assert view["error"]["name"] == "WorkflowFatalError"
    message = view["error"]["message"]
    assert message.startswith(f"step {names[8][:40]!r}... (250 characters) is inside 8 steps")
    assert "is 2,274 bytes of UTF-8 (not counting attempt numbers): over the 2,048" in message


async def test_a_step_inside_too_many_fails_the_instance_at_once_whatever_the_retries(
    stepline: Stepline,
):
    """Raised into the body of the step around it as an error, the refusal failed that step's
    attempt, and each retry, naming the steps inside it afresh (``#2``), met it again, and
    so did every step around it in turn: thousands of attempts, until the step limit."""
    workflow = await stepline.register("nests-as-deep-as-it-is-let", NestsAsDeepAsItIsLet)

    view = await finished(await workflow.create(params=["l"] * (MAX_STEP_DEPTH + 2)))

    assert view["status"] == "errored"
    assert view["error"] == {
        "name": "WorkflowFatalError",
        "message": "step 'l' is inside 65 steps, each in the body of the one before: a step "
        "may be inside at most 64",
    }
    assert len(view["steps"]) <= MAX_STEP_DEPTH + 1


class FailsOnceOutermost(WorkflowEntrypoint):
    """Steps named ``event.payload``, each called in the body of the one before; the outermost
    fails its first attempt once everything inside it has run, and is retried."""

    async def run(self, event, step):
        failed: list[bool] = []

        async def level(names: list[str], depth: int) -> str:
            name, *inner = names
            if not inner:
                return await step.do(name, lambda: "bottom")

            async def body() -> str:
                got = await level(inner, depth + 1)
                if depth == 0 and not failed:
                    failed.append(True)
                    raise ValueError("once")
                return got

            retries = {"retries": {"limit": 1, "delay": 1}} if depth == 0 else ONE_ATTEMPT
            return await step.do(name, body, config=retries)

        return await level(event.payload, 0)


async def test_a_full_name_at_the_bound_is_kept_in_the_outer_steps_retry(stepline: Stepline):
    """The retry names the steps inside it within ``outer-1#2``: counted with its attempt
    number, the same full name was two bytes over, and the retry of a passing failure was
    refused every time."""
    workflow = await stepline.register("fails-once-outermost", FailsOnceOutermost)
    at_bound = names_adding_up_to(STEP_FULL_NAME_MAX_BYTES)

    instance = await workflow.create(params=at_bound)
    view = await finished(instance)

    assert view["status"] == "complete", view.get("error")
    assert view["output"] == "bottom"
    retried = [s["name"] for s in view["steps"] if s["name"].startswith(f"{at_bound[0]}-1#2/")]
    assert len(retried) == 7  # the retry ran every step inside it again, the deepest too
    assert len(retried[-1].encode()) == STEP_FULL_NAME_MAX_BYTES + len("#2") + len("-1")
    found = await stepline.client.step_output(
        stepline.account_id,
        "fails-once-outermost",
        instance.id,
        step_name=retried[-1],
        step_type="step",
    )
    assert found["output"] == "bottom"


def nested_in(levels: int, attempt: int) -> tuple[Enclosing, ...]:
    """``levels`` steps named ``a``, each in the body of the one before, each in its
    ``attempt``-th attempt (its key scope ``a-1#<attempt>``)."""
    enclosing: tuple[Enclosing, ...] = ()
    for depth in range(levels):
        full = "a" if depth == 0 else f"{enclosing[-1].key_scope()}{KEY_SEPARATOR}a"
        record = StepRecord(
            instance_pk=1,
            key=f"do:1:{full}",
            seq=depth,
            kind="do",
            name=full.replace(KEY_SEPARATOR, "/") + "-1",
            status="running",
            start=0,
        )
        enclosing = (*enclosing, Enclosing(record, Attempt(start=0), attempt))
    return enclosing


def test_a_step_may_be_inside_64_steps_and_its_key_then_holds_every_attempt_number():
    """Each step inside another adds its attempt number to the names of those inside it
    (``#10001`` after 10,000 retries): the depth bounds what they add, so that a key with a
    full name at the bound still fits PostgreSQL's index, and a retry never refuses a name
    its first attempt took."""
    last = "b" * (STEP_FULL_NAME_MAX_BYTES - MAX_STEP_DEPTH * len("a-1/"))
    token = ENCLOSING.set(nested_in(MAX_STEP_DEPTH, MAX_RETRY_LIMIT + 1))
    try:
        key, shown = scoped_name(last)
    finally:
        ENCLOSING.reset(token)
    assert len(key.encode()) == len(shown.encode()) == STEP_SHOWN_NAME_MAX_BYTES
    assert shown.startswith("a-1#10001/a-1#10001/")

    token = ENCLOSING.set(nested_in(MAX_STEP_DEPTH + 1, 1))
    try:
        with pytest.raises(InvalidRequest, match="is inside 65 steps, each in the body of"):
            scoped_name("b")
    finally:
        ENCLOSING.reset(token)


class FailsDeepBesideASleep(WorkflowEntrypoint):
    """Beside a sleep of an hour (which parks the instance), steps each in the body of the one
    before, too deep; each body waits a moment first, so each attempt is announced."""

    async def run(self, event, step):
        async def level(depth: int) -> str:
            if depth == 0:
                return "bottom"

            async def body() -> str:
                await asyncio.sleep(0.001)
                return await level(depth - 1)

            return await step.do("l", body, config=ONE_ATTEMPT)

        await asyncio.gather(step.sleep("long", "1 hour"), level(MAX_STEP_DEPTH + 2))
        return "unreachable"


async def test_an_instance_failed_beside_a_parking_branch_ends_errored_with_its_steps(
    suspending: Stepline,
):
    """The parking branch's write came after the end of the run, and left the instance
    waiting with its error (on PostgreSQL, about half the time); and every step the failure
    came out of stayed running in the record, its attempt with no end."""
    workflow = await suspending.register("fails-deep-beside-a-sleep", FailsDeepBesideASleep)
    handles = [await workflow.create(params=None) for _ in range(4)]

    for handle in handles:
        view = await finished(handle)
        assert view["status"] == "errored", view
        assert view["error"]["message"].startswith("step 'l' is inside 65 steps")
        outer = [s for s in view["steps"] if s["type"] == "step"]
        assert len(outer) == MAX_STEP_DEPTH + 1
        assert {s["success"] for s in outer} == {False}
        assert {a["error"]["name"] for s in outer for a in s["attempts"]} == {"WorkflowFatalError"}
