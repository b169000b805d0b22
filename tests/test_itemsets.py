"""The itemset miners and rule derivation: by hand, against mlxtend, and at their limits."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from mlxtend.frequent_patterns import apriori as mlxtend_apriori
from mlxtend.frequent_patterns import association_rules as mlxtend_rules
from mlxtend.frequent_patterns import fpgrowth as mlxtend_fpgrowth

from storage.errors import BadParameterError, MemoryBudgetError
from tools.itemsets import association_rules, min_count_for, mine

ALGOS = ["fpgrowth", "apriori"]
METRICS = ["antecedent support", "consequent support", "support", "confidence", "lift"]
METRICS += ["leverage", "conviction"]

#: Five baskets small enough to count by hand (columns: milk, bread, butter, eggs).
ITEMS = ["milk", "bread", "butter", "eggs"]
HAND = [
    {"milk", "bread"},
    {"milk", "bread", "butter"},
    {"bread", "butter"},
    {"milk", "eggs"},
    {"milk", "bread", "butter", "eggs"},
]


def onehot(baskets: list[set[str]], items: list[str]) -> np.ndarray:
    return np.array([[item in basket for item in items] for basket in baskets])


def found(itemsets, names=ITEMS) -> dict[frozenset, int]:
    frame = itemsets.to_frame(names)
    counts = np.rint(frame["support"] * itemsets.n_baskets).astype(int)
    return dict(zip(frame["itemsets"], counts, strict=True))


def generated(seed: int, n_baskets: int, n_items: int, density: float) -> np.ndarray:
    """Random baskets with skewed item popularity and a few planted bundles."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    chance = np.clip(popularity / popularity.mean() * density, 0, 0.9)
    matrix = rng.random((n_baskets, n_items)) < chance
    for first in range(0, 6, 2):
        matrix[:, first + 1] |= matrix[:, first] & (rng.random(n_baskets) < 0.6)
    matrix[:, n_items - 1] |= matrix[:, 2] & matrix[:, 4]
    return matrix


DATASETS = {
    "dense-30": (generated(0, 300, 18, 0.35), 0.0537),
    "mid-400": (generated(1, 400, 25, 0.25), 0.0213),
    "sparse-2000": (generated(2, 2000, 120, 0.04), 0.00437),
    "tiny-50": (generated(3, 50, 10, 0.4), 0.111),
}


@pytest.mark.parametrize("algo", ALGOS)
def test_hand_counted_itemsets(algo: str) -> None:
    # min_support 0.4 of 5 baskets: an itemset must be in 2 baskets.
    itemsets = mine(sp.csr_matrix(onehot(HAND, ITEMS)), min_support=0.4, algo=algo)
    assert found(itemsets) == {
        frozenset({"milk"}): 4,
        frozenset({"bread"}): 4,
        frozenset({"butter"}): 3,
        frozenset({"eggs"}): 2,
        frozenset({"milk", "bread"}): 3,
        frozenset({"milk", "butter"}): 2,
        frozenset({"bread", "butter"}): 3,
        frozenset({"milk", "eggs"}): 2,
        frozenset({"milk", "bread", "butter"}): 2,
    }


def test_hand_counted_rule_metrics() -> None:
    itemsets = mine(sp.csr_matrix(onehot(HAND, ITEMS)), min_support=0.4)
    rules = association_rules(itemsets)
    by_rule = {
        (tuple(ITEMS[i] for i in left), tuple(ITEMS[i] for i in right)): row
        for left, right, (_, row) in zip(
            rules["antecedents"], rules["consequents"], rules.iterrows(), strict=True
        )
    }

    # bread -> butter: 3 of bread's 4 baskets hold butter; butter is in 3 of 5.
    bread_butter = by_rule[("bread",), ("butter",)]
    assert bread_butter["support"] == pytest.approx(3 / 5)
    assert bread_butter["confidence"] == pytest.approx(3 / 4)
    assert bread_butter["lift"] == pytest.approx((3 / 4) / (3 / 5))
    assert bread_butter["leverage"] == pytest.approx(3 / 5 - 4 / 5 * 3 / 5)
    assert bread_butter["conviction"] == pytest.approx((1 - 3 / 5) / (1 - 3 / 4))
    assert bread_butter["count"] == 3

    # butter -> bread always holds, so its conviction is infinite.
    butter_bread = by_rule[("butter",), ("bread",)]
    assert butter_bread["confidence"] == 1.0
    assert np.isinf(butter_bread["conviction"])

    # 4 pairs x 2 directions + 1 triple x 6 splits.
    assert len(rules) == 14


def test_redundant_rules_by_hand() -> None:
    itemsets = mine(sp.csr_matrix(onehot(HAND, ITEMS)), min_support=0.4)
    flagged = association_rules(itemsets, redundant="flag")
    dropped = association_rules(itemsets, redundant="drop")

    def names(frame: pd.DataFrame) -> set[tuple]:
        return {
            (frozenset(ITEMS[i] for i in left), frozenset(ITEMS[i] for i in right))
            for left, right in zip(frame["antecedents"], frame["consequents"], strict=True)
        }

    # milk+bread -> butter (2/3) is no better than bread -> butter (3/4); milk+butter ->
    # bread (1) ties butter -> bread (1); bread+butter -> milk (2/3) loses to bread -> milk.
    redundant = {
        (frozenset({"milk", "bread"}), frozenset({"butter"})),
        (frozenset({"milk", "butter"}), frozenset({"bread"})),
        (frozenset({"bread", "butter"}), frozenset({"milk"})),
    }
    assert names(flagged[flagged["redundant"]]) == redundant
    assert names(dropped) == names(flagged) - redundant


def test_redundancy_matches_its_definition() -> None:
    matrix, support = DATASETS["dense-30"]
    itemsets = mine(sp.csr_matrix(matrix), min_support=support)
    rules = association_rules(itemsets, min_confidence=0.3, redundant="flag")
    everything = association_rules(itemsets)
    confidence = {
        (frozenset(left), frozenset(right)): value
        for left, right, value in zip(
            everything["antecedents"],
            everything["consequents"],
            everything["confidence"],
            strict=True,
        )
    }
    for left, right, value, flag in zip(
        rules["antecedents"],
        rules["consequents"],
        rules["confidence"],
        rules["redundant"],
        strict=True,
    ):
        general = [
            confidence[(frozenset(subset), frozenset(right))]
            for size in range(1, len(left))
            for subset in itertools.combinations(left, size)
        ]
        expected = any(other >= value - 1e-12 for other in general)
        assert flag == expected, (left, right)
    assert rules["redundant"].any()


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("max_len", [None, 2, 3], ids=["any-length", "pairs", "triples"])
@pytest.mark.parametrize("name", list(DATASETS))
def test_same_itemsets_and_supports_as_mlxtend(name: str, max_len: int | None, algo: str) -> None:
    matrix, support = DATASETS[name]
    frame = pd.DataFrame(matrix, columns=[f"item{i}" for i in range(matrix.shape[1])])
    reference = (mlxtend_fpgrowth if algo == "fpgrowth" else mlxtend_apriori)(
        frame, min_support=support, max_len=max_len, use_colnames=True
    )
    ours = mine(sp.csr_matrix(matrix), min_support=support, max_len=max_len, algo=algo)
    ours_frame = ours.to_frame(list(frame.columns))

    expected = dict(zip(reference["itemsets"], reference["support"], strict=True))
    actual = dict(zip(ours_frame["itemsets"], ours_frame["support"], strict=True))
    assert actual.keys() == expected.keys()
    assert all(actual[key] == pytest.approx(expected[key], rel=1e-12) for key in expected)
    assert len(expected) > 20


@pytest.mark.parametrize("name", ["dense-30", "sparse-2000"])
def test_rule_metrics_match_mlxtend(name: str) -> None:
    matrix, support = DATASETS[name]
    frame = pd.DataFrame(matrix, columns=[f"item{i}" for i in range(matrix.shape[1])])
    frequent = mlxtend_fpgrowth(frame, min_support=support, use_colnames=True)
    # 0.2137 is no ratio of small counts: at an exact tie such as 3/15 = 0.2 mlxtend's ratio
    # of float supports can land just under the threshold, while counts divide exactly.
    reference = mlxtend_rules(
        frequent, num_itemsets=len(frame), metric="confidence", min_threshold=0.2137
    )
    itemsets = mine(sp.csr_matrix(matrix), min_support=support)
    ours = association_rules(itemsets, min_confidence=0.2137)
    columns = np.asarray(frame.columns)

    def keyed(rules: pd.DataFrame, to_names) -> dict[tuple, np.ndarray]:
        values = rules[METRICS].to_numpy()
        return {
            (frozenset(to_names(left)), frozenset(to_names(right))): row
            for left, right, row in zip(
                rules["antecedents"], rules["consequents"], values, strict=True
            )
        }

    expected = keyed(reference, lambda side: side)
    actual = keyed(ours, lambda side: columns[list(side)])
    assert actual.keys() == expected.keys()
    keys = list(expected)
    np.testing.assert_allclose(
        np.array([actual[key] for key in keys]),
        np.array([expected[key] for key in keys]),
        rtol=1e-10,
    )
    assert len(keys) > 20


def test_support_exactly_at_the_threshold_counts() -> None:
    # 0.1 * 30 is 3.0000000000000004 in floats; 3 of 30 baskets still have support 0.1.
    assert min_count_for(0.1, 30) == 3
    matrix = np.zeros((30, 2), dtype=bool)
    matrix[:3] = True
    for algo in ALGOS:
        itemsets = mine(sp.csr_matrix(matrix), min_support=0.1, algo=algo)
        assert found(itemsets, ["a", "b"])[frozenset({"a", "b"})] == 3


def test_supports_use_the_given_basket_count() -> None:
    # Baskets without any item of interest are left out of the matrix but still count.
    itemsets = mine(sp.csr_matrix(onehot(HAND, ITEMS)), min_support=0.4, n_baskets=10)
    assert found(itemsets) == {frozenset({"milk"}): 4, frozenset({"bread"}): 4}


def test_rules_with_one_item_on_the_left() -> None:
    matrix, support = DATASETS["mid-400"]
    itemsets = mine(sp.csr_matrix(matrix), min_support=support)
    everything = association_rules(itemsets)
    focused = association_rules(itemsets, antecedent_column=4)
    with_four = everything[[4 in left for left in everything["antecedents"]]]
    assert len(focused) == len(with_four) > 0
    assert all(4 in left for left in focused["antecedents"])


def test_lookup_finds_every_itemset_and_nothing_else() -> None:
    matrix, support = DATASETS["mid-400"]
    itemsets = mine(sp.csr_matrix(matrix), min_support=support)
    for size in range(1, itemsets.max_size + 1):
        nodes, items = itemsets.members(size)
        assert (itemsets.lookup(items) == nodes).all()
    absent = np.array([[itemsets.columns.size - 1, 0]])  # out of the rarest-first order
    assert itemsets.lookup(absent)[0] == -1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_support": 0}, "min_support"),
        ({"min_support": 1.5}, "min_support"),
        ({"min_support": 0.1, "max_len": 0}, "max_len"),
        ({"min_support": 0.1, "algo": "eclat"}, "algo"),
    ],
    ids=["zero-support", "support-over-one", "zero-length", "unknown-algo"],
)
def test_bad_parameters(kwargs: dict, message: str) -> None:
    with pytest.raises(BadParameterError, match=message):
        mine(sp.csr_matrix(onehot(HAND, ITEMS)), **kwargs)


@pytest.mark.parametrize("algo", ALGOS)
def test_memory_guard_stops_before_growing(algo: str) -> None:
    # 400 items in every basket: every one of the 2^400 subsets is frequent.
    matrix = sp.csr_matrix(np.ones((50, 400), dtype=bool))
    with pytest.raises(MemoryBudgetError) as caught:
        mine(matrix, min_support=0.5, algo=algo, memory_budget_mb=64)
    assert "min_support" in str(caught.value)


def test_rules_memory_guard() -> None:
    itemsets = mine(sp.csr_matrix(np.ones((20, 12), dtype=bool)), min_support=0.5, max_len=6)
    with pytest.raises(MemoryBudgetError, match="rules"):
        association_rules(itemsets, memory_budget_mb=1)


def test_no_frequent_items() -> None:
    itemsets = mine(sp.csr_matrix(onehot(HAND, ITEMS)), min_support=1.0)
    assert len(itemsets) == 0
    assert association_rules(itemsets).empty
