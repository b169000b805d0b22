"""The router: commands, group addressing, sentences in English and Chinese, errors."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import Field

from bot.router import (
    Command,
    NotForUs,
    NotUnderstood,
    ToolRequest,
    extract_item,
    route,
)
from storage.errors import BadParameterError, UnknownToolError
from tools.base import BaseTool, Params, Report
from tools.registry import Registry, load_registry


class BasketParams(Params):
    min_support: float = Field(0.01, gt=0, le=1, description="share of baskets")
    top: int = Field(10, ge=1, le=100, description="rules to show")
    item: str | None = Field(None, description="only rules with this product")


class BasketTool(BaseTool):
    name = "rules"
    summary = "What sells together"
    params_model = BasketParams
    phrases = ("bought together", "buy together", "basket", "一起买", "经常一起")

    def run(self, dataset, params) -> Report:
        return Report(title="rules")


class GroupParams(Params):
    k: int | Literal["auto"] = Field("auto", description="number of segments")


class GroupTool(BaseTool):
    name = "segment"
    summary = "Customer segments"
    params_model = GroupParams
    positional = "k"
    phrases = ("best customers", "segment my customers", "客户分群")

    def run(self, dataset, params) -> Report:
        return Report(title="segment")


class ForecastTool(BaseTool):
    """A plugin the router has never heard of."""

    name = "forecast"
    summary = "Sales forecast"
    phrases = ("predict", "next month", "预测")

    def run(self, dataset, params) -> Report:
        return Report(title="forecast")


@pytest.fixture
def registry() -> Registry:
    return Registry([BasketTool(), GroupTool(), ForecastTool()])


def test_command_with_key_value_parameters(registry):
    routed = route("/rules min_support=0.02 top=5", registry)
    assert isinstance(routed, ToolRequest)
    assert routed.tool.name == "rules"
    assert routed.params == BasketParams(min_support=0.02, top=5)


def test_bare_word_fills_the_positional_parameter(registry):
    routed = route("/segment 5", registry)
    assert isinstance(routed, ToolRequest) and routed.params.k == 5


def test_command_addressed_to_this_bot_in_a_group(registry):
    routed = route("/segment@MarketTestBot 3", registry, bot_username="markettestbot")
    assert isinstance(routed, ToolRequest) and routed.params.k == 3


def test_command_addressed_to_another_bot_is_ignored(registry):
    assert isinstance(route("/help@OtherBot", registry, bot_username="MarketTestBot"), NotForUs)


@pytest.mark.parametrize(
    ("line", "name", "args"),
    [
        ("/help", "help", []),
        ("/help rules", "help", ["rules"]),
        ("/HELP", "help", []),
        ('/use "spring sale"', "use", ["spring sale"]),
        ("/map product=Description", "map", ["product=Description"]),
        ("/forget confirm ab12", "forget", ["confirm", "ab12"]),
    ],
    ids=["help", "help-tool", "upper-case", "quoted-name", "map", "forget-confirm"],
)
def test_builtin_commands(registry, line, name, args):
    assert route(line, registry) == Command(name, args)


def test_dataset_word_picks_the_dataset_for_one_call(registry):
    routed = route("/segment 4 dataset=spring", registry)
    assert isinstance(routed, ToolRequest)
    assert routed.dataset == "spring" and routed.params.k == 4
    assert routed.command == "/segment k=4 dataset=spring"


def test_unknown_command_suggests_the_closest(registry):
    with pytest.raises(UnknownToolError) as caught:
        route("/segmnt", registry)
    assert "/segmnt" in caught.value.message
    assert caught.value.hint == "Did you mean /segment?"


def test_unknown_command_far_from_any(registry):
    with pytest.raises(UnknownToolError) as caught:
        route("/xyzzy", registry)
    assert "/help" in caught.value.hint


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/rules min_support=2", "Bad value for min_support: '2'"),
        ("/rules top=many", "Bad value for top: 'many'"),
        ("/rules minsupport=0.1", "Did you mean min_support=?"),
        ("/rules 0.1", "takes no bare value"),
    ],
    ids=["out-of-range", "not-a-number", "misspelt", "no-positional"],
)
def test_bad_parameters_name_the_problem_and_give_the_usage(registry, line, expected):
    with pytest.raises(BadParameterError) as caught:
        route(line, registry)
    assert expected in caught.value.message
    assert caught.value.hint.startswith("Usage: /rules")


@pytest.mark.parametrize(
    ("sentence", "tool", "item"),
    [
        ("what do people buy with tea?", "rules", "tea"),
        ("What goes well with green tea?", "rules", "green tea"),
        ("which products are bought together", "rules", None),
        ("哪些商品经常一起买?", "rules", None),
        ("和奶茶一起买的商品有哪些？", "rules", "奶茶"),
        ("who are my best customers", "segment", None),
        ("帮我做客户分群", "segment", None),
        ("predict next month's sales", "forecast", None),
        ("预测下个月的销售额", "forecast", None),
    ],
)
def test_sentences_route_by_the_tools_phrases(registry, sentence, tool, item):
    routed = route(sentence, registry)
    assert isinstance(routed, ToolRequest)
    assert routed.tool.name == tool
    assert getattr(routed.params, "item", None) == item


def test_phrases_match_whole_words_only(registry):
    # "basket" is a rules phrase; "basketball" is not about baskets.
    assert isinstance(route("I like basketball", registry), NotUnderstood)


def test_item_question_without_a_matching_phrase_goes_to_the_tool_with_an_item(registry):
    routed = route("what sells with scones", registry)
    assert isinstance(routed, ToolRequest)
    assert (routed.tool.name, routed.params.item) == ("rules", "scones")


def test_sentence_matching_nothing(registry):
    assert route("good morning", registry) == NotUnderstood("good morning")


def test_empty_line_is_not_for_us(registry):
    assert isinstance(route("   ", registry), NotForUs)


@pytest.mark.parametrize(
    ("sentence", "item"),
    [
        ("what do people buy with tea?", "tea"),
        ("what is bought together with 'jasmine tea' too?", "jasmine tea"),
        ("What sells with the WHITE HANGING HEART?", "WHITE HANGING HEART"),
        ("跟咖啡一起买什么", "咖啡"),
        ("买了蛋糕的人还买什么？", "蛋糕"),
        ("who are my best customers", None),
    ],
)
def test_extract_item(sentence, item):
    assert extract_item(sentence) == item


def test_the_real_registry_routes_the_examples():
    registry = load_registry()
    for name in ("segment", "rules"):
        if name not in registry:
            pytest.fail(f"the built-in tool {name} is not registered")
    routed = route("what do people buy with tea?", registry)
    assert isinstance(routed, ToolRequest) and routed.tool.name == "rules"
    assert routed.params.item == "tea"
    chinese = route("哪些商品经常一起买?", registry)
    assert isinstance(chinese, ToolRequest) and chinese.tool.name == "rules"
    best = route("who are my best customers", registry)
    assert isinstance(best, ToolRequest) and best.tool.name == "segment"
