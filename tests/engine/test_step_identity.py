"""Step identity: (kind, name, occurrence), and what the step context says (§2.3, §2.1)."""

from __future__ import annotations

from stepline import Stepline, WorkflowEntrypoint
from tests.engine.helpers import finished, step_names


class DuplicateNames(WorkflowEntrypoint):
    async def run(self, event, step):
        self.env.hit("run")

        async def first():
            self.env.hit("first")
            return "a"

        async def second():
            self.env.hit("second")
            return "b"

        one = await step.do("x", first)
        await step.sleep("nap", "1 hour")
        two = await step.do("x", second)
        await step.sleep("nap", "2 hours")
        return [one, two]


async def test_duplicate_names_are_distinct_steps_with_their_own_cache(
    any_stepline: Stepline, probe
):
    workflow = await any_stepline.register("duplicates", DuplicateNames)
    view = await finished(await workflow.create())

    assert view["output"] == ["a", "b"]
    assert [s["name"] for s in view["steps"] if s["type"] == "step"] == ["x-1", "x-2"]
    assert probe.calls["first"] == 1
    assert probe.calls["second"] == 1


class ContextRecorder(WorkflowEntrypoint):
    async def run(self, event, step):
        config = {"retries": {"limit": 2, "delay": 10, "backoff": "constant"}}

        async def record(ctx):
            self.env.hit(
                "ctx",
                {
                    "name": ctx.step_name,
                    "count": ctx.step_count,
                    "attempt": ctx.attempt,
                    "cf": [ctx["step"]["name"], ctx["step"]["count"], ctx["attempt"]],
                    "limit": ctx["config"]["retries"]["limit"],
                },
            )
            if ctx.step_count == 2 and ctx.attempt == 1:
                raise RuntimeError("once")
            return ctx.attempt

        return [
            await step.do("check", record, config=config),
            await step.do("check", record, config=config),
        ]


async def test_the_context_gives_the_attempt_the_step_name_and_its_count(stepline: Stepline, probe):
    workflow = await stepline.register("context", ContextRecorder)
    view = await finished(await workflow.create())

    assert view["output"] == [1, 2]
    assert probe.seen["ctx"] == [
        {"name": "check", "count": 1, "attempt": 1, "cf": ["check", 1, 1], "limit": 2},
        {"name": "check", "count": 2, "attempt": 1, "cf": ["check", 2, 1], "limit": 2},
        {"name": "check", "count": 2, "attempt": 2, "cf": ["check", 2, 2], "limit": 2},
    ]


class NamedSteps(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.do("a", lambda: 1)
        await step.sleep("a", 10)
        await step.do("b", lambda: 2)
        await step.do("a", lambda: 3)
        return None


async def test_step_kinds_count_occurrences_separately(stepline: Stepline):
    workflow = await stepline.register("named", NamedSteps)
    view = await finished(await workflow.create())

    assert [(s["type"], s["name"]) for s in view["steps"]] == [
        ("step", "a-1"),
        ("sleep", "a-1"),
        ("step", "b-1"),
        ("step", "a-2"),
    ]


class SleepDurationChanges(WorkflowEntrypoint):
    """The first run sleeps "1 hour"; after the replay the same call asks for "2 hours"."""

    async def run(self, event, step):
        runs = self.env.hit("run")
        await step.do("start", lambda: "started")
        await step.sleep("nap", "1 hour" if runs == 1 else "2 hours")
        return "done"


async def test_a_sleep_is_keyed_by_its_duration(suspending: Stepline, probe):
    workflow = await suspending.register("sleep-changes", SleepDurationChanges)
    view = await finished(await workflow.create(), timeout=3)

    assert view["status"] == "complete"
    assert probe.calls["run"] >= 3, "the changed sleep should have been a new sleep"
    assert [s["type"] for s in view["steps"]].count("sleep") == 2
    assert step_names(view)[0] == "start-1"


class ReadsLikeDicts(WorkflowEntrypoint):
    async def run(self, event, step):
        def read(ctx):
            return {
                "attempt": ctx.get("attempt"),
                "missing": ctx.get("missing", "default"),
                "has_config": "config" in ctx,
                "keys": sorted(ctx),
                "step": dict(ctx)["step"],
            }

        return {
            "ctx": await step.do("read", read),
            "payload": event.get("payload", {}),
            "has_id": "instanceId" in event,
            "keys": sorted(event.keys()),
            "workflow": dict(event)["workflowName"],
        }


async def test_the_context_and_the_event_read_as_the_dicts_cloudflares_sdk_gives(
    stepline: Stepline,
):
    # Cloudflare's Python SDK hands ``run`` and each step plain dicts (§2.2): code written
    # for it calls ``.get``, tests keys with ``in`` and copies them with ``dict``.
    workflow = await stepline.register("dicts", ReadsLikeDicts)
    view = await finished(await workflow.create(params={"order": 1}))

    assert view["status"] == "complete", view["error"]
    assert view["output"] == {
        "ctx": {
            "attempt": 1,
            "missing": "default",
            "has_config": True,
            "keys": ["attempt", "config", "step"],
            "step": {"name": "read", "count": 1},
        },
        "payload": {"order": 1},
        "has_id": True,
        "keys": ["instanceId", "payload", "schedule", "timestamp", "workflowName"],
        "workflow": "dicts",
    }
