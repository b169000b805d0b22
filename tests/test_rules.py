"""`/rules` end to end on stored datasets: orders, basket lists and one-hot tables."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from mlxtend.frequent_patterns import association_rules as mlxtend_rules
from mlxtend.frequent_patterns import fpgrowth as mlxtend_fpgrowth
from mlxtend.preprocessing import TransactionEncoder

from bot.router import route_sentence
from storage.errors import (
    BadParameterError,
    EmptyDataError,
    MemoryBudgetError,
    MissingRoleError,
)
from storage.store import store_frame
from tools import rules as rules_module
from tools.baskets import load_baskets
from tools.params import parse_params, split_words
from tools.registry import Registry
from tools.rules import RulesParams, RulesTool, match_item, rule_sentence

ORDER_ROLES = {
    "order_id": "InvoiceNo",
    "product": "Description",
    "quantity": "Quantity",
    "customer_id": "CustomerID",
    "timestamp": "InvoiceDate",
    "category": "Category",
}
CATEGORY = {"Bread": "bakery", "Butter": "dairy", "Milk": "dairy", "Jam": "pantry"}
CATEGORY |= {"绿茶 green tea": "tea", "Cups": "kitchen", "Eggs": "dairy", "Bacon": "meat"}

#: The classic mlxtend example: five baskets as a one-hot table.
CLASSIC = [
    ["Milk", "Onion", "Nutmeg", "Kidney Beans", "Eggs", "Yogurt"],
    ["Dill", "Onion", "Nutmeg", "Kidney Beans", "Eggs", "Yogurt"],
    ["Milk", "Apple", "Kidney Beans", "Eggs"],
    ["Milk", "Unicorn", "Corn", "Kidney Beans", "Yogurt"],
    ["Corn", "Onion", "Onion", "Kidney Beans", "Ice cream", "Eggs"],
]


def order_lines(baskets: list[list[str]], *, returns: list[tuple[str, str]] = ()) -> pd.DataFrame:
    """Order lines, one order per basket; `returns` adds (order, product) return lines."""
    rows = [
        {
            "InvoiceNo": f"{number:05d}",
            "Description": product,
            "Quantity": 1,
            "CustomerID": f"c{number % 7}",
            "InvoiceDate": f"2024-03-{1 + number % 28:02d} 10:{number % 60:02d}:00",
            "Category": CATEGORY.get(product, "other"),
        }
        for number, basket in enumerate(baskets)
        for product in basket
    ]
    for order, product in returns:
        rows.append(
            {
                "InvoiceNo": order,
                "Description": product,
                "Quantity": -1,
                "CustomerID": "c1",
                "InvoiceDate": "2024-03-02 11:00:00",
                "Category": CATEGORY.get(product, "other"),
            }
        )
    return pd.DataFrame(rows)


def shop_baskets(n: int = 300, seed: int = 5) -> list[list[str]]:
    """Baskets where bread pulls butter and eggs pull bacon, around random other items."""
    rng = np.random.default_rng(seed)
    products = list(CATEGORY)
    baskets = []
    for _ in range(n):
        basket = set(rng.choice(products, size=int(rng.integers(1, 5)), replace=False))
        if "Bread" in basket and rng.random() < 0.8:
            basket.add("Butter")
        if "Eggs" in basket and rng.random() < 0.7:
            basket.add("Bacon")
        baskets.append(sorted(basket))
    return baskets


@pytest.fixture
def tool() -> RulesTool:
    return RulesTool(memory_budget_mb=512)


@pytest.fixture
def shop(engine):
    frame = order_lines(shop_baskets(), returns=[("C90001", "Jam"), ("C90002", "Milk")])
    return store_frame(engine, frame, chat_id=1, name="shop", roles=ORDER_ROLES, kind="orders")


def rule_keys(rules: pd.DataFrame) -> set[tuple[frozenset, frozenset]]:
    return {
        (frozenset(left), frozenset(right))
        for left, right in zip(rules["antecedents"], rules["consequents"], strict=True)
    }


def csv_rules(report) -> pd.DataFrame:
    data = report.files[0].data
    assert data.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 with a byte-order mark
    frame = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig", keep_default_na=False)
    frame["antecedents"] = [tuple(text.split(" + ")) for text in frame["antecedents"]]
    frame["consequents"] = [tuple(text.split(" + ")) for text in frame["consequents"]]
    return frame


def test_hand_checked_rules_from_orders(engine, tool) -> None:
    # Four orders; butter is in 3, bread in 3, both in 2. The return line of order 00003
    # would put butter into a fourth order if returns were counted.
    baskets = [["Bread", "Butter"], ["Bread", "Butter", "Jam"], ["Bread"], ["Butter", "Milk"]]
    frame = order_lines(baskets, returns=[("00002", "Butter")])
    dataset = store_frame(engine, frame, chat_id=1, name="tiny", roles=ORDER_ROLES, kind="orders")
    params = RulesParams(min_support=0.5, min_confidence=0.5, min_lift=0)
    report = tool.run(dataset, params)

    rules = csv_rules(report)
    by_rule = {
        (left, right): row
        for left, right, (_, row) in zip(
            rules["antecedents"], rules["consequents"], rules.iterrows(), strict=True
        )
    }
    bread_butter = by_rule[("Bread",), ("Butter",)]
    assert bread_butter["support"] == pytest.approx(2 / 4)
    assert bread_butter["confidence"] == pytest.approx(2 / 3)
    assert bread_butter["lift"] == pytest.approx((2 / 3) / (3 / 4))
    assert bread_butter["count"] == 2
    assert len(rules) == 2  # bread -> butter and butter -> bread; nothing else has 2 orders
    assert report.facts["baskets"] == 4
    assert report.facts["min_support_auto"] == "no"


def test_returns_are_left_out(shop) -> None:
    baskets = load_baskets(shop, min_count=1)
    # The two return lines are cancellations (invoice "C..."), not baskets of their own.
    assert baskets.n_baskets == 300
    lines = order_lines(shop_baskets())
    assert baskets.item_counts["Jam"] == (lines["Description"] == "Jam").sum()


def test_orders_report_end_to_end(shop, tool) -> None:
    report = tool.run(shop, RulesParams(top=5))

    assert report.title == "What sells together"
    assert report.facts["min_support_auto"] == "yes"
    assert "chosen automatically" in report.text
    assert report.facts["rules"] >= 5
    assert report.facts["baskets"] == 300
    words, numbers = report.tables
    assert len(words.frame) == len(numbers.frame) == 5
    assert "Customers who buy" in report.text and "more often than average" in report.text
    assert report.charts[0].png.startswith(b"\x89PNG")
    lifts = numbers.frame["lift"].tolist()
    assert lifts == sorted(lifts, reverse=True)
    # The planted bundle shows up among the strongest rules.
    top = set(zip(words.frame["customers who buy"], words.frame["also buy"], strict=True))
    assert any("Bread" in left and "Butter" in right for left, right in top) or any(
        "Eggs" in left and "Bacon" in right for left, right in top
    )
    assert any(followup.command.startswith("/rules min_support=") for followup in report.followups)


def test_csv_lists_every_rule_with_redundant_ones_flagged(shop, tool) -> None:
    report = tool.run(shop, RulesParams(min_support=0.02))
    frame = csv_rules(report)
    assert list(frame.columns[:2]) == ["antecedents", "consequents"]
    assert {
        "support",
        "confidence",
        "lift",
        "leverage",
        "conviction",
        "count",
        "redundant",
    } <= set(frame.columns)
    assert len(frame) == report.facts["rules"] + report.facts["redundant_rules"]
    assert (frame["confidence"] >= 0.2).all() and (frame["lift"] >= 1).all()


@pytest.mark.parametrize("sort", ["confidence", "support", "leverage", "count"])
def test_sort_by_any_metric(shop, tool, sort: str) -> None:
    report = tool.run(shop, RulesParams(min_support=0.03, sort=sort, top=8))
    frame = csv_rules(report)
    useful = frame[~frame["redundant"]]
    values = useful[sort].tolist()
    assert values == sorted(values, reverse=True)
    numbers = report.tables[1].frame
    assert numbers[sort].iloc[0] == pytest.approx(useful[sort].iloc[0], rel=1e-3)


def test_min_lift_and_confidence_filter(shop, tool) -> None:
    report = tool.run(shop, RulesParams(min_support=0.03, min_confidence=0.6, min_lift=1.5))
    frame = csv_rules(report)
    assert len(frame) > 0
    assert (frame["confidence"] >= 0.6).all() and (frame["lift"] >= 1.5).all()


def test_customer_day_baskets_and_categories(shop, tool) -> None:
    by_day = tool.run(shop, RulesParams(basket="customer_day", min_support=0.05))
    # 300 orders from 7 customers on 28 days: orders of one customer on one day merge.
    assert by_day.facts["baskets"] < 300
    assert "shopping days" in by_day.text

    categories = tool.run(shop, RulesParams(level="category", min_support=0.05))
    assert categories.facts["items"] == len(set(CATEGORY.values()))
    assert "categories" in categories.text


def test_baskets_kind(engine, tool) -> None:
    rows = [(f"b{n}", item) for n, basket in enumerate(shop_baskets()) for item in basket]
    frame = pd.DataFrame(rows, columns=["basket", "item"])
    roles = {"order_id": "basket", "product": "item"}
    dataset = store_frame(engine, frame, chat_id=1, name="lists", roles=roles, kind="baskets")
    report = tool.run(dataset, RulesParams(min_support=0.03))
    orders = store_frame(
        engine, order_lines(shop_baskets()), chat_id=1, name="o", roles=ORDER_ROLES, kind="orders"
    )
    same = tool.run(orders, RulesParams(min_support=0.03))
    assert rule_keys(csv_rules(report)) == rule_keys(csv_rules(same))


def test_onehot_kind_matches_mlxtend_classic_example(engine, tool) -> None:
    encoder = TransactionEncoder()
    frame = pd.DataFrame(encoder.fit(CLASSIC).transform(CLASSIC), columns=encoder.columns_)
    dataset = store_frame(engine, frame, chat_id=1, name="classic", roles={}, kind="onehot")
    params = RulesParams(min_support=0.6, min_confidence=0.7, min_lift=0, max_len=10)
    report = tool.run(dataset, params)

    frequent = mlxtend_fpgrowth(frame, min_support=0.6, use_colnames=True)
    # Only the metrics compared: mlxtend's "certainty" divides by zero here (Kidney Beans
    # are in every basket) and warnings are errors in this test run.
    expected = mlxtend_rules(
        frequent,
        num_itemsets=5,
        metric="confidence",
        min_threshold=0.7,
        return_metrics=["support", "confidence", "lift"],
    )
    assert rule_keys(csv_rules(report)) == rule_keys(expected)
    assert report.facts["baskets"] == 5


def test_onehot_table_with_an_id_column(engine, tool) -> None:
    encoder = TransactionEncoder()
    frame = pd.DataFrame(encoder.fit(CLASSIC).transform(CLASSIC), columns=encoder.columns_)
    frame.insert(0, "basket", ["a", "b", "c", "d", "e"])
    dataset = store_frame(
        engine, frame, chat_id=1, name="ids", roles={"order_id": "basket"}, kind="onehot"
    )
    report = tool.run(dataset, RulesParams(min_support=0.6, min_lift=0))
    assert report.facts["items"] == len(encoder.columns_)


def test_rules_near_chance_come_with_a_warning(engine, shop, tool) -> None:
    # Every item drawn on its own: whatever rules come out are chance.
    rng = np.random.default_rng(11)
    products = list(CATEGORY)
    picks = rng.random((600, len(products))) < 0.4
    chance = [[item for item, on in zip(products, row, strict=True) if on] for row in picks]
    frame = order_lines([basket for basket in chance if basket])
    dataset = store_frame(
        engine, frame, chat_id=2, name="chance", roles=ORDER_ROLES, kind="orders"
    )
    assert "Careful: none of these rules stands out" in tool.run(dataset, RulesParams()).text
    assert "Careful" not in tool.run(shop, RulesParams()).text


def test_orders_without_a_product_column_say_how_to_map_one(engine, tool) -> None:
    frame = order_lines(shop_baskets(n=20))
    roles = {role: column for role, column in ORDER_ROLES.items() if role != "product"}
    dataset = store_frame(engine, frame, chat_id=3, name="bare", roles=roles, kind="orders")
    with pytest.raises(MissingRoleError) as caught:
        tool.run(dataset, RulesParams())
    assert caught.value.role == "product"
    assert "/map product=" in str(caught.value)


def test_item_goes_with(shop, tool) -> None:
    report = tool.run(shop, RulesParams(item="bread"))
    assert report.title == "What goes with Bread"
    assert "Bread is in" in report.text
    rules = csv_rules(report)
    assert len(rules) > 0
    assert all("Bread" in left for left in rules["antecedents"])
    lines = order_lines(shop_baskets())
    bread_orders = lines.loc[lines["Description"] == "Bread", "InvoiceNo"].nunique()
    assert report.facts["item_support"] == pytest.approx(bread_orders / 300, abs=1e-6)
    words = report.tables[0].frame
    assert list(words.columns[:2]) == ["in a basket with it and", "customers also buy"]
    assert not words["in a basket with it and"].str.contains("Bread").any()
    assert not words["customers also buy"].str.contains("Bread").any()


def test_item_with_chinese_name(shop, tool) -> None:
    report = tool.run(shop, RulesParams(item="绿茶"))
    assert report.facts["item"] == "绿茶 green tea"


def test_unknown_item_suggests_names(shop, tool) -> None:
    with pytest.raises(BadParameterError) as caught:
        tool.run(shop, RulesParams(item="xylophone"))
    assert "No item matches 'xylophone'" in caught.value.message


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("BREAD", "Bread"),
        ("bread", "Bread"),
        ("Ｂｒｅａｄ", "Bread"),  # full-width letters
        ("green", "绿茶 green tea"),
        ("绿茶", "绿茶 green tea"),
        ("tea green", "绿茶 green tea"),
        ("bred", "Bread"),
        ("Butter 250g", "Butter"),
    ],
    ids=["upper", "lower", "full-width", "substring", "chinese", "word-order", "typo", "longer"],
)
def test_match_item(query: str, expected: str) -> None:
    assert match_item(query, list(CATEGORY)).name == expected


def test_match_item_prefers_the_most_popular_and_lists_others() -> None:
    names = ["Green tea 100g", "Green tea 50g", "Black tea"]  # most popular first
    match = match_item("green tea", names)
    assert match.name == "Green tea 100g"
    assert match.others == ["Green tea 50g"]


def test_no_match_lists_close_names() -> None:
    with pytest.raises(BadParameterError) as caught:
        match_item("biscuits", ["Biscotti", "Milk", "Cups"])
    assert caught.value.hint.startswith("Closest names: Biscotti")


def test_sentence_in_words() -> None:
    rule = pd.Series(
        {"antecedents": ("A", "B"), "consequents": ("C",), "confidence": 0.59, "lift": 3.04}
    )
    rule["count"] = 120
    sentence = rule_sentence(rule, ("order", "orders"))
    assert sentence == (
        "Customers who buy A and B also buy C in 59 % of those orders, "
        "3.0x more often than average (120 orders)."
    )


@pytest.mark.parametrize("value", ["0", "1.5", "-0.1", "often"])
def test_bad_support_is_refused(tool, value: str) -> None:
    with pytest.raises(BadParameterError) as caught:
        parse_params(tool, [f"min_support={value}"])
    assert "min_support" in caught.value.message


def test_other_bad_parameters(tool) -> None:
    for words in (["max_len=1"], ["sort=price"], ["algo=eclat"], ["basket=week"]):
        with pytest.raises(BadParameterError):
            parse_params(tool, words)
    params = parse_params(tool, split_words('min_support=0.01 top=5 item="green tea"'))
    assert params.min_support == 0.01 and params.item == "green tea"
    assert parse_params(tool, ["tea"]).item == "tea"


def test_only_returns_is_an_empty_basket_set(engine, tool) -> None:
    frame = order_lines([], returns=[("C1", "Bread"), ("C2", "Butter")])
    dataset = store_frame(engine, frame, chat_id=1, name="ret", roles=ORDER_ROLES, kind="orders")
    with pytest.raises(EmptyDataError, match="no baskets"):
        tool.run(dataset, RulesParams())


def test_one_item_baskets_only(engine, tool) -> None:
    frame = order_lines([["Bread"], ["Butter"], ["Bread"], ["Milk"]])
    dataset = store_frame(engine, frame, chat_id=1, name="one", roles=ORDER_ROLES, kind="orders")
    with pytest.raises(EmptyDataError) as caught:
        tool.run(dataset, RulesParams())
    assert "single item" in caught.value.message
    assert "basket=customer_day" in caught.value.hint


def test_memory_guard_in_the_tool(shop) -> None:
    with pytest.raises(MemoryBudgetError) as caught:
        RulesTool(memory_budget_mb=1).run(shop, RulesParams(min_support=0.01))
    assert "min_support" in str(caught.value)


def test_auto_support_backs_off_when_memory_runs_out(shop, tool, monkeypatch) -> None:
    real_mine = rules_module.mine

    def tight_mine(*args, min_support: float, **kwargs):
        if min_support < 0.05:
            raise MemoryBudgetError("over budget", hint="Raise min_support.")
        return real_mine(*args, min_support=min_support, **kwargs)

    monkeypatch.setattr(rules_module, "mine", tight_mine)
    report = tool.run(shop, RulesParams(min_confidence=0.9))
    assert report.facts["min_support"] == 0.05
    assert "a lower support would not fit in memory" in report.text


def test_item_rarer_than_the_support(engine, tool) -> None:
    baskets = [["Bread", "Butter"]] * 30 + [["Jam", "Butter"]] * 2
    frame = order_lines(baskets)
    dataset = store_frame(engine, frame, chat_id=1, name="jam", roles=ORDER_ROLES, kind="orders")
    report = tool.run(dataset, RulesParams(item="jam", min_support=0.2))
    assert report.facts["rules"] == 0
    assert "Jam is in too few baskets" in report.text
    assert report.facts["item_support"] == pytest.approx(2 / 32)


def test_apriori_gives_the_same_rules(shop, tool) -> None:
    fp = tool.run(shop, RulesParams(min_support=0.02, algo="fpgrowth"))
    ap = tool.run(shop, RulesParams(min_support=0.02, algo="apriori"))
    assert csv_rules(fp).equals(csv_rules(ap))


def test_registered_and_routed_from_sentences() -> None:
    registry = Registry([RulesTool()])
    for sentence in (
        "what sells together?",
        "which products are bought together",
        "market basket analysis please",
        "哪些商品经常一起买",
        "给我看看关联规则",
    ):
        assert route_sentence(sentence, registry).tool.name == "rules", sentence
