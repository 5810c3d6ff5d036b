"""The duration grammar (§2.1) and step config parsing with the spec's defaults (§2.4)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stepline import Stepline, WorkflowEntrypoint
from stepline.durations import MAX_DURATION_MS, MAX_WAIT_MS, parse_duration_ms
from stepline.errors import InvalidDuration, InvalidStepConfig
from stepline.step_config import parse_step_config
from tests.engine.helpers import finished

DAY = 86_400_000
UNITS = {
    "second": 1_000,
    "minute": 60_000,
    "hour": 3_600_000,
    "day": DAY,
    "week": 7 * DAY,
    "month": 30 * DAY,
    "year": int(365.25 * DAY),
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (0, 0),
        (1500, 1500),
        ("1500", 1500),
        ("10 seconds", 10_000),
        ("1 second", 1_000),
        ("5 minutes", 300_000),
        ("1 hour", 3_600_000),
        ("1 day", DAY),
        ("2 weeks", 14 * DAY),
        ("1 month", 30 * DAY),
        ("1 year", 365 * DAY + DAY // 4),
        ("1.5 hours", 5_400_000),
    ],
)
def test_durations_parse_to_milliseconds(text, expected):
    assert parse_duration_ms(text) == expected


@given(
    n=st.integers(min_value=0, max_value=10_000),
    unit=st.sampled_from(sorted(UNITS)),
    plural=st.booleans(),
)
def test_number_and_unit_round_trip(n, unit, plural):
    text = f"{n} {unit}{'s' if plural else ''}"
    assert parse_duration_ms(text) == n * UNITS[unit]


def test_milliseconds_may_be_written_with_the_ms_unit():
    assert parse_duration_ms("50 ms") == 50


@pytest.mark.parametrize("text", ["10 fortnights", "3 parsecs", "5 secs"])
def test_an_unknown_unit_is_an_invalid_duration_naming_the_unit(text):
    with pytest.raises(InvalidDuration) as raised:
        parse_duration_ms(text)
    message = str(raised.value)
    assert "unit" in message
    assert "second, minute, hour, day, week, month" in message


@pytest.mark.parametrize("value", ["soon", "", "-5 seconds", -1, float("nan"), True, None, []])
def test_values_that_are_not_durations_are_rejected(value):
    with pytest.raises(InvalidDuration):
        parse_duration_ms(value)


@pytest.mark.parametrize(
    "value",
    # 10**400 has no float: an OverflowError, not a refusal, before
    [
        "100001 years",
        "1e300 seconds",
        1e300,
        2**63,
        pytest.param(10**400, id="10**400"),
        timedelta.max,
    ],
)
def test_a_duration_too_long_to_keep_is_rejected(value):
    with pytest.raises(InvalidDuration, match="longer than 100,000 years"):
        parse_duration_ms(value)
    assert parse_duration_ms("100000 years") == MAX_DURATION_MS


def test_the_default_config_is_the_spec_default():
    config = parse_step_config(None).to_json()

    assert config == {
        "retries": {"limit": 5, "delay": 10_000, "backoff": "exponential"},
        "timeout": 600_000,
    }


def test_a_partial_config_is_filled_with_defaults():
    config = parse_step_config({"retries": {"limit": 1}}).to_json()

    assert config == {
        "retries": {"limit": 1, "delay": 10_000, "backoff": "exponential"},
        "timeout": 600_000,
    }


def test_config_durations_use_the_duration_grammar():
    config = parse_step_config({"retries": {"delay": "5 seconds"}, "timeout": "2 minutes"})

    assert config.retries.delay_ms == 5_000
    assert config.timeout_ms == 120_000


@pytest.mark.parametrize(
    "raw",
    [
        {"retry": {"limit": 1}},
        {"retries": {"limit": 1, "max": 3}},
        {"retries": {"backoff": "fibonacci"}},
        {"retries": {"limit": -1}},
        {"retries": {"limit": 10_001}},
        {"retries": {"limit": 1.5}},
        {"retries": {"limit": float("inf")}},  # OverflowError, not a refusal, before
        {"retries": {"limit": float("nan")}},  # and ValueError
        {"retries": {"limit": 10**400}},  # too large for a float
        {"retries": {"delay": "1 eon"}},
        {"timeout": 0},
        {"timeout": "soon"},
        {"sensitive": "input"},
        {1: "one"},  # a TypeError from sorting the unknown keys' names, before
        {"timeout": 1, 2: "two"},
        {"retries": {"limit": 1, 3: "three"}},
        "not a mapping",
    ],
)
def test_invalid_configs_are_rejected(raw):
    with pytest.raises(InvalidStepConfig):
        parse_step_config(raw)


def test_a_retry_limit_of_10000_is_allowed():
    assert parse_step_config({"retries": {"limit": 10_000}}).retries.limit == 10_000


@pytest.mark.parametrize("backoff", ["constant", "linear", "exponential"])
def test_no_retry_waits_longer_than_the_longest_sleep(backoff):
    retries = parse_step_config({"retries": {"delay": "200 days", "backoff": backoff}}).retries
    assert retries.delay_after(1) == 200 * 86_400_000
    assert retries.delay_after(2) == (200 if backoff == "constant" else 365) * 86_400_000
    assert retries.delay_after(10_000) == (200 if backoff == "constant" else 365) * 86_400_000
    assert retries.delay_after(10_000, base_ms=MAX_DURATION_MS) == MAX_WAIT_MS == 365 * 86_400_000


class BadConfig(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("x", config=event.payload)
        async def x():
            self.env.hit("x")
            return 1

        try:
            return await x()
        except Exception as exc:  # an invalid config is fatal, not catchable
            return f"caught {type(exc).__name__}"


@pytest.mark.parametrize(
    "config",
    [{"bogus": 1}, {"retries": {"delay": "1 eon"}}, {"retries": {"limit": -1}}],
)
async def test_a_step_with_an_invalid_config_fails_the_instance(stepline: Stepline, probe, config):
    workflow = await stepline.register("bad-config", BadConfig)
    view = await finished(await workflow.create(params=config))

    assert view["status"] == "errored"
    prefix = 'Step config for "x-1" is in a invalid format'
    assert view["error"]["message"].startswith(prefix)
    assert view["error"]["message"].count(prefix) == 1, view["error"]["message"]
    assert probe.calls["x"] == 0


class KeyNotAString(WorkflowEntrypoint):
    async def run(self, event, step):
        try:
            return await step.do("x", lambda: 1, config={"retries": {"limit": 1, 3: "three"}})
        except Exception as exc:  # an invalid config is fatal, not catchable
            return f"caught {type(exc).__name__}"


async def test_a_config_key_that_is_not_a_string_fails_the_instance(stepline: Stepline):
    view = await finished(await (await stepline.register("int-key", KeyNotAString)).create())

    assert view["status"] == "errored"
    assert view["error"] == {
        "name": "WorkflowFatalError",
        "message": 'Step config for "x-1" is in a invalid format: unknown retries key(s) 3',
    }


class BadCalls(WorkflowEntrypoint):
    """Makes, in ``run``, the mistake named by ``params``."""

    async def run(self, event, step):
        if event.payload == "sleep":
            await step.sleep("nap", "3 fortnights")
        elif event.payload == "wait":
            await step.wait_for_event("w", "go", timeout="400 days")
        else:
            await step.do("n" * 300, lambda: 1)
        return "made no mistake"


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        ("sleep", "sleep duration '3 fortnights' has an unknown unit 'fortnights'"),
        ("wait", "wait_for_event timeout must be 1 second to 365 days"),
        ("name", "step name 'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn'... (300 characters) must"),
    ],
)
async def test_a_mistake_in_workflow_code_is_told_in_a_sentence(
    stepline: Stepline, mistake, message
):
    """Not with the REST API's key (``workflows.api.error.body``) in front of it."""
    workflow = await stepline.register("bad-calls", BadCalls)
    view = await finished(await workflow.create(params=mistake))

    assert view["status"] == "errored"
    assert view["error"]["message"].startswith(message), view["error"]
