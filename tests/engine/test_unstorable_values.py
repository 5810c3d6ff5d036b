"""Text no store can keep, a lone UTF-16 surrogate (what ``json.loads`` makes of ``"\\ud800"``):
refused where it is a value the workflow hands over, replaced where it is only a message, and
never the end of the engine (it once stopped SQLite's writer thread, and every run with it).
A NUL, which PostgreSQL's text cannot hold, is replaced in a message on every store.
And times: kept as JavaScript's ``JSON.stringify`` writes a ``Date``, when they say their
zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from stepline import Stepline, WorkflowEntrypoint
from stepline.errors import InvalidRequest
from stepline.validation import STORED_TEXT_MAX_CHARS
from tests.engine.helpers import finished, step

LONE = "lone \ud800 surrogate"


class Hands(WorkflowEntrypoint):
    """``params["how"]`` says where the lone surrogate goes."""

    async def run(self, event, step):
        how = event.payload["how"]
        if how == "step output":
            return await step.do("give", lambda: LONE)
        if how == "error message":

            def fail() -> None:
                raise ValueError(LONE)

            return await step.do("fail", fail, config={"retries": {"limit": 0}})
        if how == "nul in error":

            def fail_with_nul() -> None:
                raise ValueError("nul \x00 char")

            try:
                await step.do("fail", fail_with_nul, config={"retries": {"limit": 0}})
            except ValueError as live:
                return str(live)  # the error itself, as it was raised
        if how == "group with a lone surrogate":

            def fail_as_a_group() -> None:
                raise ExceptionGroup(LONE, [ValueError("inside")])

            caught: list[str] = []
            try:
                await step.do("fail", fail_as_a_group, config={"retries": {"limit": 0}})
            except* ValueError as group:
                caught.extend(str(e) for e in group.exceptions)
            return caught
        if how == "long config key":
            return await step.do("s", lambda: 1, config={"x" * 100_000: 1})
        if how == "nul in a config key":
            return await step.do("s", lambda: 1, config={"ret\x00ries": {"limit": 0}})
        if how == "step name":
            return await step.do(LONE, lambda: 1)
        if how == "workflow output":
            return LONE
        return await step.do("fine", lambda: "fine")


async def _outcome(stepline: Stepline, how: str) -> dict:
    workflow = stepline.workflow("hands")
    return await finished(await workflow.create(params={"how": how}))


async def test_a_lone_surrogate_errors_its_own_instance_and_nothing_else(stepline: Stepline):
    await stepline.register("hands", Hands)
    workflow = stepline.workflow("hands")
    handles = [
        await workflow.create(params={"how": how})
        for how in ("step output", "fine", "workflow output", "step name", "fine")
    ]
    views = [await finished(handle) for handle in handles]

    assert [v["status"] for v in views] == ["errored", "complete", "errored", "errored", "complete"]
    assert "not serialisable" in views[0]["error"]["message"]
    assert "not JSON" in views[2]["error"]["message"]
    assert "lone surrogates" in views[3]["error"]["message"]
    # The engine goes on: a later instance runs to its end.
    assert (await _outcome(stepline, "fine"))["output"] == "fine"


async def test_an_error_message_with_a_lone_surrogate_is_kept_with_a_replacement(
    stepline: Stepline,
):
    await stepline.register("hands", Hands)
    view = await _outcome(stepline, "error message")

    assert view["status"] == "errored"
    assert view["error"]["message"] == "lone ? surrogate"
    assert step(view, "fail-1")["attempts"][0]["error"]["message"] == "lone ? surrogate"


async def test_an_error_message_with_a_nul_is_kept_with_a_replacement(stepline: Stepline):
    """PostgreSQL refused the step's row, and the run caught the database's complaint in
    place of its own error; the step's failure was never recorded."""
    await stepline.register("hands", Hands)
    view = await _outcome(stepline, "nul in error")

    assert view["status"] == "complete"
    assert view["output"] == "nul \x00 char"
    failed = step(view, "fail-1")
    assert failed["success"] is False
    assert failed["attempts"][0]["error"] == {"name": "ValueError", "message": "nul ? char"}


async def test_a_nul_quoted_in_the_instances_own_error_is_kept_as_a_replacement(
    stepline: Stepline,
):
    """The engine's errors may quote workflow code, here an unknown key of a step's config:
    on PostgreSQL the end of the run was refused, and the instance stayed running."""
    await stepline.register("hands", Hands)
    view = await _outcome(stepline, "nul in a config key")

    assert view["status"] == "errored"
    assert view["error"]["name"] == "WorkflowFatalError"
    assert view["error"]["message"].endswith("unknown key(s) ret?ries")


async def test_a_group_whose_message_has_a_lone_surrogate_fails_its_step_as_raised(
    stepline: Stepline,
):
    """The group's state, kept to raise it again on a replay, could not be written: the run
    got a UnicodeEncodeError in place of its group, and the step an attempt with no end."""
    await stepline.register("hands", Hands)
    view = await _outcome(stepline, "group with a lone surrogate")

    assert view["status"] == "complete", view.get("error")
    assert view["output"] == ["inside"]
    attempt = step(view, "fail-1")["attempts"][0]
    assert attempt["success"] is False
    assert attempt["error"] == {
        "name": "ExceptionGroup",
        "message": "lone ? surrogate (1 sub-exception)",
    }


async def test_the_instances_own_error_is_cut_short_as_a_steps_is(stepline: Stepline):
    await stepline.register("hands", Hands)
    view = await _outcome(stepline, "long config key")

    assert view["status"] == "errored"
    message = view["error"]["message"]
    assert STORED_TEXT_MAX_CHARS - 2 <= len(message) <= STORED_TEXT_MAX_CHARS
    assert message.endswith(" more characters]")


class CatchesAGroup(WorkflowEntrypoint):
    """A step fails with an exception group (``params`` says which), which ``except*``
    catches; a sleep then parks the instance, and its replay raises the group again from
    what was stored."""

    async def run(self, event, step):
        how = event.payload

        def fail() -> None:
            if how == "a name no store keeps":
                member = ValueError("inside")
                setattr(member, "k\ud800", 1)
                raise ExceptionGroup("g", [member])
            if how == "a long message":
                raise ExceptionGroup("m" * 70_000, [ExceptionGroup("n" * 70_000, [ValueError()])])
            if how == "many exceptions":
                raise ExceptionGroup("g", [ValueError() for _ in range(3_000)])
            raise ExceptionGroup("g", [ValueError("x" * 200) for _ in range(400)])

        caught: list[str] = []
        try:
            await step.do("fail", fail, config={"retries": {"limit": 0}})
        except* ValueError as group:
            caught.extend(type(e).__name__ for e in group.exceptions)
        await step.sleep("nap", "1 second")
        return len(caught)  # on the replay, from the stored state


@pytest.mark.parametrize(
    ("how", "caught"),
    [
        ("a name no store keeps", 1),
        ("over 64 KiB", 400),
        ("a long message", 1),
        ("many exceptions", 1),
    ],
)
async def test_a_group_whose_state_is_cut_is_caught_by_except_star_on_the_replay(
    suspending: Stepline, how: str, caught: int
):
    """Its state kept as its class alone, the replay raised a StepFailedError that
    ``except* ValueError`` let through, and the instance errored where its run had not. Kept
    smaller still, a group of many exceptions of one class keeps one of them."""
    workflow = await suspending.register("catches-a-group", CatchesAGroup)
    view = await finished(await workflow.create(params=how))

    assert view["status"] == "complete", view.get("error")
    assert view["output"] == caught


class Shouts(WorkflowEntrypoint):
    async def run(self, event, step):
        def fail() -> None:
            raise ValueError("x" * 1_000_000)

        return await step.do("shout", fail, config={"retries": {"limit": 2}})


async def test_a_long_error_message_is_kept_cut_short(stepline: Stepline):
    """Each attempt keeps its message, and the step's row is written with all of them at
    every attempt: a message of a megabyte is cut, and says so."""
    workflow = await stepline.register("shouts", Shouts)
    view = await finished(await workflow.create())

    assert view["status"] == "errored"
    cut = "x" * 65_507 + "… [934,493 more characters]"  # 65,534 characters in all
    assert view["error"] == {"name": "ValueError", "message": cut}
    attempts = step(view, "shout-1")["attempts"]
    assert [a["error"] for a in attempts] == [{"name": "ValueError", "message": cut}] * 3


async def test_params_and_event_payloads_with_a_lone_surrogate_are_refused(stepline: Stepline):
    await stepline.register("hands", Hands)
    workflow = stepline.workflow("hands")
    with pytest.raises(InvalidRequest):
        await workflow.create(params={"how": LONE})
    instance = await workflow.create(params={"how": "fine"})
    with pytest.raises(InvalidRequest):
        await instance.send_event("late", {"note": LONE})


class HandsATime(WorkflowEntrypoint):
    async def run(self, event, step):
        aware = await step.do("aware", lambda: datetime(2026, 1, 2, 3, 4, 5, 678_900, UTC))
        offset = await step.do(
            "offset", lambda: datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
        )
        if event.payload and event.payload.get("naive"):
            await step.do("naive", lambda: datetime(2026, 1, 2))
        return {"aware": aware, "offset": offset, "at": datetime(2026, 1, 2, tzinfo=UTC)}


async def test_a_time_is_stored_as_javascript_writes_a_date(stepline: Stepline):
    workflow = await stepline.register("hands-a-time", HandsATime)
    view = await finished(await workflow.create())

    assert view["status"] == "complete"
    assert view["output"] == {
        "aware": "2026-01-02T03:04:05.678Z",
        "offset": "2026-01-02T03:04:05.000Z",
        "at": "2026-01-02T00:00:00.000Z",
    }


async def test_a_time_without_a_zone_is_not_serialisable(stepline: Stepline):
    workflow = await stepline.register("hands-a-time", HandsATime)
    view = await finished(await workflow.create(params={"naive": True}))

    assert view["status"] == "errored"
    assert view["error"]["name"] == "WorkflowFatalError"
    assert '"naive-1" returned a value which is not serialisable' in view["error"]["message"]
