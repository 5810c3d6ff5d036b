"""``create_batch``: 1 to 100 instances, existing ids skipped, first duplicate wins (§3.6)."""

from __future__ import annotations

import pytest

from stepline import InstanceNotFound, Stepline, WorkflowEntrypoint
from stepline.errors import InvalidRequest
from tests.engine.helpers import finished


class Echo(WorkflowEntrypoint):
    async def run(self, event, step):
        return event.payload


@pytest.mark.parametrize("size", [1, 100])
async def test_a_batch_of_1_to_100_instances_is_created(stepline: Stepline, size):
    workflow = await stepline.register("echo", Echo)
    items = [{"id": f"item-{n}", "params": n} for n in range(size)]

    created = await workflow.create_batch(items)

    assert [c.id for c in created] == [f"item-{n}" for n in range(size)]
    outputs = [(await finished(c))["output"] for c in created]
    assert outputs == list(range(size))


@pytest.mark.parametrize("size", [0, 101])
async def test_an_empty_or_oversized_batch_is_rejected(stepline: Stepline, size):
    workflow = await stepline.register("echo", Echo)
    items = [{"id": f"item-{n}"} for n in range(size)]

    with pytest.raises(InvalidRequest):
        await workflow.create_batch(items)
    if size:
        with pytest.raises(InstanceNotFound):
            await workflow.get("item-0")


async def test_existing_ids_are_skipped_and_left_out(stepline: Stepline):
    workflow = await stepline.register("echo", Echo)
    await finished(await workflow.create(id="old", params="original"))

    created = await workflow.create_batch(
        [{"id": "new-1", "params": 1}, {"id": "old", "params": "replaced"}, {"id": "new-2"}]
    )

    assert [c.id for c in created] == ["new-1", "new-2"]
    assert (await (await workflow.get("old")).status())["output"] == "original"


async def test_the_first_of_duplicate_ids_in_a_batch_wins(stepline: Stepline):
    workflow = await stepline.register("echo", Echo)

    created = await workflow.create_batch(
        [{"id": "twin", "params": "first"}, {"id": "twin", "params": "second"}]
    )

    assert [c.id for c in created] == ["twin"]
    assert (await finished(created[0]))["output"] == "first"


async def test_a_batch_without_ids_gets_distinct_ids(stepline: Stepline):
    workflow = await stepline.register("echo", Echo)

    created = await workflow.create_batch([{"params": n} for n in range(5)])

    assert len({c.id for c in created}) == 5


async def test_an_invalid_id_rejects_the_whole_batch(stepline: Stepline):
    workflow = await stepline.register("echo", Echo)

    with pytest.raises(InvalidRequest):
        await workflow.create_batch([{"id": "fine"}, {"id": "not valid!"}])
    with pytest.raises(InstanceNotFound):
        await workflow.get("fine")


@pytest.mark.parametrize("item", [{"instance_id": "rest-name"}, {"params": 1, "retentoin": {}}])
async def test_a_batch_item_with_a_key_the_handle_does_not_take_is_refused(
    stepline: Stepline, item: dict
):
    """The handle takes the binding's keys (``id``, ``params``, ``retention``): the REST
    body's ``instance_id``, or a typo, made an instance with a random id and no retention."""
    workflow = await stepline.register("echo", Echo)

    with pytest.raises(InvalidRequest, match="id, params, retention"):
        await workflow.create_batch([{"id": "fine"}, item])
    with pytest.raises(InstanceNotFound):
        await workflow.get("fine")


async def test_a_batch_item_may_carry_a_location_hint(stepline: Stepline):
    """The binding's ``locationHint``: a best-effort hint, taken and unused here."""
    workflow = await stepline.register("echo", Echo)

    [created] = await workflow.create_batch([{"id": "hinted", "location_hint": "weur"}])
    assert created.id == "hinted"
