"""Parsing the words after a command into a tool's typed parameters, and the errors it gives."""

from __future__ import annotations

from datetime import date
from typing import Literal

import pytest
from pydantic import Field

from storage.errors import BadParameterError
from tools.base import BaseTool, Params
from tools.params import describe_allowed, parse_params, split_words


class SampleParams(Params):
    top: int = Field(10, ge=1, le=50, description="how many rules to show")
    min_support: float = Field(0.01, gt=0, le=1, description="smallest share of baskets")
    sort: Literal["lift", "confidence", "support"] = Field("lift", description="order")
    since: date | None = Field(None, description="first day")
    item: str | None = Field(None, description="product to look at")


class SampleTool(BaseTool):
    name = "sample"
    summary = "A tool to parse parameters for"
    params_model = SampleParams
    positional = "top"


class NoPositionalTool(SampleTool):
    name = "plain"
    positional = None


def parse(*words: str, tool: BaseTool | None = None) -> Params:
    return parse_params(tool or SampleTool(), list(words))


def message_of(*words: str, tool: BaseTool | None = None) -> str:
    with pytest.raises(BadParameterError) as error:
        parse(*words, tool=tool)
    return str(error.value)


def test_defaults() -> None:
    assert parse() == SampleParams()


def test_key_value_words_are_typed() -> None:
    params = parse("top=5", "min_support=0.02", "sort=confidence", "since=2024-03-31")
    assert params == SampleParams(
        top=5, min_support=0.02, sort="confidence", since=date(2024, 3, 31)
    )


def test_positional_word_fills_the_positional_parameter() -> None:
    assert parse("7").top == 7


def test_keys_are_forgiving_about_case_and_dashes() -> None:
    assert parse("MIN-SUPPORT=0.5").min_support == 0.5


def test_quoted_values_stay_whole() -> None:
    words = split_words('item="green tea" top=3')
    assert parse(*words).item == "green tea"


def test_unknown_parameter_suggests_the_closest() -> None:
    message = message_of("min_suport=0.1")
    assert "/sample has no parameter 'min_suport'. Did you mean min_support=?" in message
    assert "Usage: /sample [top=10] [min_support=0.01]" in message


def test_out_of_range_gives_the_range_and_usage_line() -> None:
    message = message_of("top=500")
    assert "Bad value for top: '500'. Allowed: a whole number in [1, 50]." in message
    assert "(how many rules to show)" in message
    assert "Usage: /sample [top=10]" in message


def test_open_lower_bound_is_shown_as_such() -> None:
    assert "a number in (0, 1]" in message_of("min_support=0")


def test_choices_are_listed() -> None:
    assert "Allowed: lift, confidence, support." in message_of("sort=price")


def test_bad_date_says_what_a_date_looks_like() -> None:
    assert "a date like 2024-03-31" in message_of("since=tomorrow")


def test_given_twice() -> None:
    assert "'top' is given twice." in message_of("5", "top=6")


def test_bare_word_without_a_positional_parameter() -> None:
    message = message_of("5", tool=NoPositionalTool())
    assert "/plain takes no bare value, but got '5'." in message


def test_describe_allowed_for_each_kind_of_field() -> None:
    assert describe_allowed(SampleParams, "top") == "a whole number in [1, 50]"
    assert describe_allowed(SampleParams, "sort") == "lift, confidence, support"
    assert describe_allowed(SampleParams, "item") == ""
