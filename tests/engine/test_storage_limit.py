"""The state one instance may persist (§2.3, §4): 1 GiB by default, counted in UTF-8 bytes
of its params, its step results, the event payloads its waits took and its output. The step,
wait or output that would take it past the limit fails the instance, which no ``try`` in
``run`` can catch. Events sent and not yet taken by a wait are held to the limit too, on
their own: the send that would pass it is refused, and the instance goes on."""

from __future__ import annotations

import asyncio

import pytest

from stepline import Stepline, WorkflowEntrypoint
from stepline.errors import CannotSendEvent
from stepline.testing import StepMocks, wait_for_status
from stepline.validation import dump_json
from tests.conftest import MakeStepline
from tests.engine.helpers import finished, step

LIMIT = 4096
"""A small limit, so that a test need not write a GiB: four 1,000-byte values fit, five do not."""
MESSAGE = "The Workflow instance exceeded the 4KiB storage limit"


class Results(WorkflowEntrypoint):
    """``params["sizes"]``: one step per size, returning a string of ``params["char"]``
    (default ``x``) whose stored JSON is that many UTF-8 bytes; ``params["nap"]``: after how
    many steps to sleep an hour (so that a suspended run replays the ones before);
    ``params["output"]``: the size of the string it returns (6 bytes by default)."""

    async def run(self, event, step):
        char = event.payload.get("char", "x")
        for n, size in enumerate(event.payload["sizes"]):
            if n == event.payload.get("nap"):
                await step.sleep("nap", "1 hour")
            text = char * ((size - 2) // len(char.encode()))
            await step.do(f"step {n}", lambda text=text: text)
        return "x" * (event.payload.get("output", 6) - 2)


async def test_the_step_that_would_pass_the_limit_fails_the_instance(
    make_stepline: MakeStepline,
):
    stepline = await make_stepline(storage_limit=LIMIT)
    workflow = await stepline.register("results", Results)
    # The params (36 bytes) and four results of 1,000 bytes fit in 4,096; a fifth does not.
    view = await finished(await workflow.create(params={"sizes": [1_000] * 5}))

    assert view["status"] == "errored", view
    assert view["error"] == {"name": "WorkflowFatalError", "message": MESSAGE}
    assert [s["success"] for s in view["steps"]] == [True, True, True, True, False]
    last = step(view, "step 4-1")
    assert last["attempts"][-1]["error"] == {"name": "WorkflowFatalError", "message": MESSAGE}
    assert last["output"] is None


async def test_values_up_to_the_limit_are_kept(make_stepline: MakeStepline):
    stepline = await make_stepline(storage_limit=LIMIT)
    workflow = await stepline.register("results", Results)
    params = {"sizes": [1_000, 1_000, 1_000], "output": 1_000}
    # The last result takes what the params, the others and the output leave, to the byte.
    params["sizes"][-1] = LIMIT - 3_000 - len(dump_json(params))
    assert len(dump_json(params)) + sum(params["sizes"]) + params["output"] == LIMIT
    view = await finished(await workflow.create(params=params))

    assert view["status"] == "complete", view["error"]


async def test_the_count_survives_a_replay(make_stepline: MakeStepline):
    stepline = await make_stepline(storage_limit=LIMIT, suspend_after=50)
    workflow = await stepline.register("results", Results)
    view = await finished(await workflow.create(params={"sizes": [1_000] * 5, "nap": 3}))

    assert view["status"] == "errored", view
    assert view["error"]["message"] == MESSAGE
    steps = [s["success"] for s in view["steps"] if s["type"] == "step"]
    assert steps == [True, True, True, True, False]


async def test_the_count_survives_a_replay_of_large_results(make_stepline: MakeStepline):
    """Results over 16 KiB stay in the store at a wake until the replay reads them; they
    count from the start all the same."""
    stepline = await make_stepline(storage_limit=64 * 1024, suspend_after=50)
    workflow = await stepline.register("results", Results)
    view = await finished(await workflow.create(params={"sizes": [20_000] * 4, "nap": 3}))

    assert view["status"] == "errored", view
    assert view["error"]["message"] == "The Workflow instance exceeded the 64KiB storage limit"
    steps = [s["success"] for s in view["steps"] if s["type"] == "step"]
    assert steps == [True, True, True, False]


async def test_the_limit_counts_utf8_bytes_not_characters(make_stepline: MakeStepline):
    stepline = await make_stepline(storage_limit=LIMIT)
    workflow = await stepline.register("results", Results)
    # 699 characters of two bytes each: 1,400 bytes a result, so the third passes 4 KiB.
    view = await finished(await workflow.create(params={"sizes": [1_400] * 3, "char": "é"}))

    assert view["status"] == "errored", view
    assert [s["success"] for s in view["steps"]] == [True, True, False]


class Waits(WorkflowEntrypoint):
    """``params["waits"]`` (default 5) waits for a ``big`` event, one after the other."""

    async def run(self, event, step):
        sizes = []
        for n in range((event.payload or {}).get("waits", 5)):
            got = await step.wait_for_event(f"wait {n}", "big", timeout="1 hour")
            sizes.append(len(got["payload"]))
        return sizes


async def test_event_payloads_that_waits_take_count(make_stepline: MakeStepline):
    stepline = await make_stepline(storage_limit=LIMIT)
    workflow = await stepline.register("waits", Waits)
    instance = await workflow.create()
    for n in range(5):
        await instance.send_event("big", "x" * 998)  # 1,000 bytes stored
        await until_taken(instance, n + 1)  # five held at once would be refused at the send
    view = await finished(instance)

    assert view["status"] == "errored", view
    assert view["error"] == {"name": "WorkflowFatalError", "message": MESSAGE}
    # The fifth wait took its event before the count: it is recorded, and the instance fails.
    assert [(s["finished"], s["error"]) for s in view["steps"]] == [(True, None)] * 5


async def test_an_event_that_wakes_a_parked_wait_counts(make_stepline: MakeStepline):
    """The wake takes the event for the wait before the run starts; the run fails at once."""
    stepline = await make_stepline(storage_limit=LIMIT, suspend_after=50)
    workflow = await stepline.register("waits", Waits)
    # The params take 1,000 bytes, so an event that fits the limit on its own passes it here.
    instance = await workflow.create(params={"waits": 1, "pad": "x" * 980})
    await wait_for_status(instance, "waiting")  # parked: the status is written as it parks
    await instance.send_event("big", "x" * 3_500)
    view = await finished(instance)

    assert view["status"] == "errored", view
    assert view["error"] == {"name": "WorkflowFatalError", "message": MESSAGE}


async def until_taken(instance, count: int) -> None:
    """Until ``count`` of the instance's waits have taken their events."""
    for _ in range(1_000):
        view = await instance.status()
        if sum(s["type"] == "waitForEvent" and s["finished"] for s in view["steps"]) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {count} waits finished: {view['steps']}")


class Holds(WorkflowEntrypoint):
    """Waits for an ``open`` event, then for as many ``big`` events as ``params["take"]``."""

    async def run(self, event, step):
        await step.wait_for_event("open", "open", timeout="1 hour")
        for n in range(event.payload["take"]):
            await step.wait_for_event(f"take {n}", "big", timeout="1 hour")
        return "done"


SEND_MESSAGE = (
    "the events this instance holds and has not yet taken would exceed its 4KiB storage "
    "limit; it takes more once a wait takes some"
)


async def held(make_stepline: MakeStepline, parked: bool, take: int):
    """A ``Holds`` instance that holds four ``big`` events of 1,000 bytes, and was refused a
    fifth."""
    stepline = await make_stepline(storage_limit=LIMIT, suspend_after=50 if parked else 60_000)
    workflow = await stepline.register("holds", Holds)
    instance = await workflow.create(params={"take": take})
    await wait_for_status(instance, "waiting" if parked else "running")
    for _ in range(4):  # 4,000 bytes held: they fit
        await instance.send_event("big", "x" * 998)
    with pytest.raises(CannotSendEvent, match="4KiB storage limit") as refused:
        await instance.send_event("big", "x" * 998)
    assert refused.value.detail == SEND_MESSAGE
    assert refused.value.http_status == 409 and refused.value.code == 10403
    return instance


@pytest.mark.parametrize("parked", [False, True])
async def test_events_held_untaken_are_limited_at_the_send(
    make_stepline: MakeStepline, parked: bool
):
    instance = await held(make_stepline, parked, take=4)
    # The refusal does not touch the instance: it takes what it holds and completes (its
    # params, the open event and the four it took are 4,014 bytes of its 4,096).
    await instance.send_event("open", None)
    view = await finished(instance)
    assert view["status"] == "complete", view
    assert [s["finished"] for s in view["steps"]] == [True] * 5


async def test_a_wait_that_takes_an_event_makes_room_for_another(make_stepline: MakeStepline):
    instance = await held(make_stepline, parked=False, take=5)
    await instance.send_event("open", None)
    await until_taken(instance, 5)
    await instance.send_event("big", "x" * 998)  # nothing held: it is taken in
    # and when the fifth wait takes it, the instance has stored more than its limit.
    view = await finished(instance)
    assert view["status"] == "errored", view
    assert view["error"] == {"name": "WorkflowFatalError", "message": MESSAGE}


async def test_an_event_larger_than_the_limit_is_refused(make_stepline: MakeStepline):
    stepline = await make_stepline(storage_limit=LIMIT)
    workflow = await stepline.register("holds", Holds)
    instance = await workflow.create(params={"take": 0})
    with pytest.raises(CannotSendEvent):
        await instance.send_event("open", "x" * (LIMIT - 1))  # its JSON is a byte over
    await instance.send_event("open", "x" * (LIMIT - 2))  # its JSON is the limit, to the byte
    view = await finished(instance)
    assert view["status"] == "errored", view  # it took the event: with the params, too much
    assert view["error"]["message"] == MESSAGE


async def test_the_workflow_output_counts(make_stepline: MakeStepline):
    stepline = await make_stepline(storage_limit=LIMIT)
    workflow = await stepline.register("results", Results)
    fits = await workflow.create(params={"sizes": [1_000] * 3, "output": 1_000})
    passes = await workflow.create(params={"sizes": [1_000] * 4, "output": 1_000})

    assert (await finished(fits))["status"] == "complete"
    view = await finished(passes)
    assert view["status"] == "errored", view
    assert view["error"] == {"name": "WorkflowFatalError", "message": MESSAGE}
    assert view["output"] is None


async def test_a_mocked_event_counts_too(make_stepline: MakeStepline, mocks: StepMocks):
    mocks.mock_event("big", "x" * 998)
    stepline = await make_stepline(storage_limit=LIMIT)
    workflow = await stepline.register("waits", Waits)
    view = await finished(await workflow.create())

    assert view["status"] == "errored", view
    assert view["error"] == {"name": "WorkflowFatalError", "message": MESSAGE}


class CatchesIt(WorkflowEntrypoint):
    async def run(self, event, step):
        for n in range(5):
            try:
                await step.do(f"step {n}", lambda: "x" * 998)
            except Exception as exc:
                return f"caught {type(exc).__name__}"
        return "no limit"


async def test_the_limit_cannot_be_caught(make_stepline: MakeStepline):
    stepline = await make_stepline(storage_limit=LIMIT)
    workflow = await stepline.register("catches-it", CatchesIt)
    view = await finished(await workflow.create())

    assert view["status"] == "errored", view
    assert view["error"]["message"] == MESSAGE


async def test_the_default_is_1_gib(stepline: Stepline):
    assert stepline.engine.storage_limit == 2**30


@pytest.mark.parametrize(("limit", "size"), [(4096, 4096), ("4KiB", 4096), ("100MB", 10**8)])
async def test_a_limit_is_bytes_or_a_size_with_its_unit(tmp_path, limit, size):
    stepline = Stepline(f"sqlite:///{tmp_path}/db.sqlite3", storage_limit=limit)
    assert stepline.engine.storage_limit == size


@pytest.mark.parametrize("limit", [0, -1, 1.5, "lots", "0 GiB", True])
async def test_a_limit_that_is_not_a_positive_number_of_bytes_is_refused(tmp_path, limit):
    with pytest.raises(ValueError, match="storage_limit"):
        Stepline(f"sqlite:///{tmp_path}/db.sqlite3", storage_limit=limit)
