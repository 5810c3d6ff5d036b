"""A step's full name (its name within all the steps it is inside) is bounded in bytes.

PostgreSQL indexes a step's key, and refuses an index entry over 2,704 bytes: a step nested
deep enough made every write of its instance fail, and the instance stayed running for good.
"""

from __future__ import annotations

import random

from stepline import Stepline, WorkflowEntrypoint
from stepline.errors import InvalidRequest
from stepline.validation import STEP_FULL_NAME_MAX_BYTES
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
    assert view["error"]["name"] == "InvalidRequest"
    message = view["error"]["message"]
    assert "is inside 7 steps" in message
    assert "is 2,049 bytes of UTF-8: over the 2,048" in message
    assert "names of the steps it is inside, which add up" in message
    assert len(view["steps"]) == 7  # no sleep: refused at the call
    assert {s["success"] for s in view["steps"]} == {False}  # each body failed in turn


class NestsAsDeepAsItIsLet(WorkflowEntrypoint):
    """Steps named ``event.payload``, each called in the body of the one before; a body
    whose call is refused returns the refusal."""

    async def run(self, event, step):
        async def level(names: list[str]) -> str:
            if not names:
                return "bottom"

            async def body() -> str:
                try:
                    return await level(names[1:])
                except InvalidRequest as refused:
                    return f"refused: {refused.detail}"

            return await step.do(names[0], body)

        return await level(event.payload)


async def test_twelve_steps_of_250_letters_each_are_refused_the_ninth_call(stepline: Stepline):
    """As deep as this, on PostgreSQL, each write of the instance failed ("index row size
    2808 exceeds btree version 4 maximum 2704"), and it stayed running for good."""
    workflow = await stepline.register("nests-as-deep-as-it-is-let", NestsAsDeepAsItIsLet)
    names = ["".join(random.choices("abcdefghijklmnopqrstuvwxyz", k=250)) for _ in range(12)]

    view = await finished(await workflow.create(params=names))

    assert view["status"] == "complete", view.get("error")
    assert view["output"].startswith(f"refused: step {names[8][:40]!r}... (250 characters)")
    assert "is inside 8 steps" in view["output"]
    assert "is 2,274 bytes of UTF-8: over the 2,048" in view["output"]
    assert len(view["steps"]) == 8
