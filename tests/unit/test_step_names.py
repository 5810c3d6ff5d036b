"""The refusal of a step name too long as JavaScript counts it says what it counted."""

from __future__ import annotations

import pytest

from stepline.errors import InvalidRequest
from stepline.validation import check_step_name


def test_a_name_of_emoji_refused_says_how_javascript_counts_it():
    # 200 characters in Python, 400 in JavaScript: "(200 characters) must be 1-256
    # characters" refused it for a length it quoted as fitting.
    with pytest.raises(InvalidRequest) as refused:
        check_step_name("\U0001f680" * 200)
    message = refused.value.detail or str(refused.value)
    assert "400 characters as JavaScript counts them" in message


@pytest.mark.parametrize("name", ["s" * 257, "", "tab\there"])
def test_other_refusals_say_what_a_name_may_be(name):
    with pytest.raises(InvalidRequest, match="must be 1-256 characters without control"):
        check_step_name(name)


def test_names_that_fit_are_returned():
    assert check_step_name("\U0001f680" * 128) == "\U0001f680" * 128
