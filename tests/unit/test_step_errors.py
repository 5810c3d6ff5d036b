"""How a step's failure is kept and raised again on a replay (§2.3), row by row."""

from __future__ import annotations

import json

from stepline.engine.step_errors import error_message, error_state, rebuild_error
from stepline.errors import StepFailedError
from stepline.store.records import StepRecord


class Refused(Exception):
    def __init__(self, code: int, payload: object) -> None:
        super().__init__(f"refused with {code}")
        self.code = code
        self.payload = payload


def failed(error_class: str | None, message: str = "refused with 7") -> StepRecord:
    return StepRecord(
        instance_pk=1, key="do:1:s", seq=1, kind="do", name="s-1", status="errored", start=0,
        error_name="Refused", error_message=message, error_class=error_class,
    )  # fmt: skip


def test_a_row_of_an_earlier_version_names_only_the_class() -> None:
    error = rebuild_error(failed(f"{__name__}:Refused"))
    assert type(error) is Refused and error.args == ("refused with 7",)


def test_state_that_is_not_json_is_left_out_and_the_rest_kept() -> None:
    state = json.loads(error_state(Refused(7, object())))
    assert state == {"class": f"{__name__}:Refused", "args": ["refused with 7"],
                     "attrs": {"code": 7}}  # fmt: skip
    error = rebuild_error(failed(error_state(Refused(7, object()))))
    assert type(error) is Refused and (error.args, error.code) == (("refused with 7",), 7)
    assert not hasattr(error, "payload")


def test_a_large_state_keeps_only_the_class() -> None:
    text = error_state(Refused(7, "x" * 100_000))
    assert json.loads(text) == {"class": f"{__name__}:Refused"}
    error = rebuild_error(failed(text))
    assert type(error) is Refused and str(error) == "refused with 7"


def test_a_class_that_is_gone_is_replayed_as_step_failed_error() -> None:
    error = rebuild_error(failed(json.dumps({"class": f"{__name__}:Gone", "args": []})))
    assert type(error) is StepFailedError
    assert (str(error), error.name) == ("refused with 7", "Refused")


def test_an_exception_group_is_replayed_with_its_exceptions() -> None:
    """A step that runs a TaskGroup fails with an ExceptionGroup: replayed, ``except*``
    must find the same exceptions in it, each of its own class and state."""
    group = ExceptionGroup("two calls failed", [ValueError("bad"), Refused(7, object())])
    error = rebuild_error(failed(error_state(group), message=str(group)))

    assert type(error) is ExceptionGroup
    assert (error.message, str(error)) == ("two calls failed", str(group))
    first, second = error.exceptions
    assert type(first) is ValueError and first.args == ("bad",)
    assert type(second) is Refused and (second.args, second.code) == (("refused with 7",), 7)
    matched, rest = error.split(Refused)
    assert matched is not None and rest is not None


def test_a_nested_group_and_a_member_that_cannot_be_made_are_kept_as_they_can_be() -> None:
    class Local(Exception):  # not importable by its path: replayed as StepFailedError
        pass

    inner = ExceptionGroup("inner", [Local("local"), KeyError("k")])
    group = ExceptionGroup("outer", [inner, Refused(8, None)])
    error = rebuild_error(failed(error_state(group), message=str(group)))

    assert type(error) is ExceptionGroup and error.message == "outer"
    nested, refused = error.exceptions
    assert type(nested) is ExceptionGroup and nested.message == "inner"
    local, key = nested.exceptions
    assert type(local) is StepFailedError and (str(local), local.name) == ("local", "Local")
    assert type(key) is KeyError and key.args == ("k",)
    assert type(refused) is Refused and refused.code == 8


def test_a_long_message_is_cut_once_and_kept_as_cut_after():
    """A failure rebuilt from its stored message (raised again by a replay) keeps it."""
    cut = error_message(ValueError("x" * 1_000_000))
    assert len(cut) <= 65_536 and cut.endswith("… [934,493 more characters]")
    assert error_message(ValueError(cut)) == cut
