"""`/rules`: what sells together (market-basket association rules), or what goes with X.

Steps: baskets from the store (`tools.baskets`), frequent itemsets (`tools.itemsets`,
FP-growth-style pattern growth by default, apriori on request), rules with support,
confidence, lift, leverage and conviction, redundant rules set aside, then a reply in
words, a numeric table, a chart and a CSV of every rule.

`min_support=auto` walks down a ladder of supports, from high to low, and stops at the
first that gives enough rules to be useful (`TARGET_RULES`, or `TARGET_ITEM_RULES` with
`item=`). It never goes below a floor of a few baskets, where rules are noise, and stops
early when the next step would exceed the itemset cap or the memory budget.
"""

from __future__ import annotations

import difflib
import io
import logging
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from storage.datasets import Dataset
from storage.errors import BadParameterError, EmptyDataError, MemoryBudgetError
from storage.settings import load_settings
from tools import charts
from tools.base import Attachment, BaseTool, Chart, Followup, Params, Report, Table
from tools.baskets import Baskets, load_baskets
from tools.itemsets import (
    RULE_COLUMNS,
    FrequentItemsets,
    association_rules,
    min_count_for,
    mine,
)

log = logging.getLogger(__name__)

Metric = Literal["lift", "confidence", "support", "leverage", "conviction", "count"]

#: Supports `min_support=auto` tries, highest first.
SUPPORT_LADDER = (
    0.5,
    0.3,
    0.2,
    0.1,
    0.05,
    0.03,
    0.02,
    0.01,
    0.005,
    0.003,
    0.002,
    0.001,
    0.0005,
    0.0003,
    0.0002,
    0.0001,
)
#: Rules (non-redundant, passing the thresholds) that make `auto` stop descending.
TARGET_RULES = 30
#: The same with `item=`: rules with that item on the left.
TARGET_ITEM_RULES = 10
#: `auto` never asks for fewer baskets than this per itemset (fewer for tiny datasets).
FLOOR_BASKETS = 10
#: `auto` stops descending once a support yields more itemsets than this.
MAX_AUTO_ITEMSETS = 200_000
#: Most rules drawn in the chart; more only hide points under points.
CHART_POINTS = 5000
#: Top rules spelled out in the reply text.
HIGHLIGHTS = 3
#: Standard deviations above the independence count that a rule needs to count as real.
CHANCE_Z = 3.0


class RulesParams(Params):
    """Parameters of `/rules`."""

    min_support: Annotated[float, Field(gt=0, le=1)] | Literal["auto"] = Field(
        "auto",
        description="share of baskets a set of items must be in, in (0, 1], or auto",
    )
    min_confidence: Annotated[float, Field(ge=0, le=1)] = Field(
        0.2, description="share of baskets with the left side that also hold the right side"
    )
    min_lift: Annotated[float, Field(ge=0)] = Field(
        1.0, description="how many times more often than average the pair must sell together"
    )
    max_len: Annotated[int, Field(ge=2, le=10)] = Field(
        4, description="most items in one rule, both sides together"
    )
    algo: Literal["fpgrowth", "apriori"] = Field("fpgrowth", description="mining algorithm")
    sort: Metric = Field("lift", description="what to rank the rules by")
    top: Annotated[int, Field(ge=1, le=50)] = Field(10, description="rules to show")
    basket: Literal["order", "customer_day"] = Field(
        "order", description="one basket per order, or per customer and day"
    )
    level: Literal["product", "category"] = Field(
        "product", description="rules between products or between categories"
    )
    item: str | None = Field(None, description="a product name: show what goes with it")


@dataclass(frozen=True)
class SupportChoice:
    """The support mined at, and how it was chosen (for the reply)."""

    value: float
    auto: bool
    reason: str


@dataclass(frozen=True)
class ItemMatch:
    """The item a user's `item=` text matched, and other close names."""

    name: str
    others: list[str]


@dataclass(frozen=True)
class RuleResult:
    """Everything the reply is built from."""

    rules: pd.DataFrame
    baskets: Baskets
    itemsets: FrequentItemsets
    support: SupportChoice
    focus: ItemMatch | None


class RulesTool(BaseTool):
    """Market-basket association rules: what sells together, and what goes with one item."""

    name = "rules"
    summary = "What sells together: association rules (bundles, cross-sell) with a chart and CSV"
    help = (
        "Finds products bought together: 'customers who buy A also buy B in 40 % of "
        "baskets, 3x more often than average'. Use item= to ask what goes with one product.\n"
        'Examples: /rules, /rules min_support=0.01 sort=confidence, /rules item="green tea", '
        "/rules level=category, /rules basket=customer_day"
    )
    params_model = RulesParams
    positional = "item"
    phrases = (
        "rules",
        "association rules",
        "what sells together",
        "sells together",
        "sold together",
        "bought together",
        "buy together",
        "goes with",
        "go with",
        "market basket",
        "basket analysis",
        "cross-sell",
        "cross sell",
        "bundles",
        "frequently bought",
        "哪些商品经常一起买",
        "经常一起买",
        "一起买",
        "一起购买",
        "关联规则",
        "关联分析",
        "购物篮",
        "搭配",
        "交叉销售",
    )

    def __init__(self, *, memory_budget_mb: float | None = None) -> None:
        self._memory_budget_mb = memory_budget_mb

    @property
    def memory_budget_mb(self) -> float:
        """The budget from settings unless one was given (workers read it when they run)."""
        if self._memory_budget_mb is None:
            self._memory_budget_mb = float(load_settings().memory_budget_mb)
        return self._memory_budget_mb

    def run(self, dataset: Dataset, params: Params) -> Report:
        assert isinstance(params, RulesParams)
        result = find_rules(dataset, params, memory_budget_mb=self.memory_budget_mb)
        return build_report(result, params, has_category=dataset.has("category"))


def find_rules(dataset: Dataset, params: RulesParams, *, memory_budget_mb: float) -> RuleResult:
    """Baskets, itemsets and rules for these parameters (no formatting)."""
    # Read the baskets once, keeping every item that the lowest support tried could need.
    support = params.min_support

    def floor(n_baskets: int) -> int:
        if support == "auto":
            return _floor_count(n_baskets)
        return min_count_for(support, max(n_baskets, 1))

    baskets = load_baskets(
        dataset,
        basket=params.basket,
        level=params.level,
        min_count=floor,
        memory_budget_mb=memory_budget_mb,
    )
    _check_baskets(baskets)
    focus = match_item(params.item, list(baskets.item_counts.index)) if params.item else None

    # Mine at the given support, or walk down the ladder until the rules are enough.
    miner = _Miner(baskets, params, focus, memory_budget_mb)
    if support == "auto":
        rules, itemsets, choice = miner.auto()
    else:
        choice = SupportChoice(support, auto=False, reason="")
        rules, itemsets = miner.at(support)
    return RuleResult(rules, baskets, itemsets, choice, focus)


def _floor_count(n_baskets: int) -> int:
    """Fewest baskets a rule may rest on under `auto`: 10, or 5 % of tiny datasets."""
    return max(2, min(FLOOR_BASKETS, math.ceil(0.05 * n_baskets)))


def _check_baskets(baskets: Baskets) -> None:
    if baskets.n_baskets == 0:
        raise EmptyDataError("There are no baskets to analyse.")
    if baskets.multi_item == 0:
        raise EmptyDataError(
            f"Every {baskets.unit} holds a single item, so nothing sells together.",
            hint="Try basket=customer_day, or check that the order id column groups lines "
            "of one order (/describe).",
        )


class _Miner:
    """Mines itemsets and derives rules at one support, or chooses the support (`auto`)."""

    def __init__(
        self,
        baskets: Baskets,
        params: RulesParams,
        focus: ItemMatch | None,
        memory_budget_mb: float,
    ) -> None:
        self.baskets = baskets
        self.params = params
        self.focus = focus
        self.budget = memory_budget_mb
        self.focus_column = baskets.items.index(focus.name) if _kept(baskets, focus) else None

    def at(self, support: float) -> tuple[pd.DataFrame, FrequentItemsets]:
        itemsets = mine(
            self.baskets.matrix,
            min_support=support,
            max_len=self.params.max_len,
            algo=self.params.algo,
            n_baskets=self.baskets.n_baskets,
            memory_budget_mb=self.budget,
        )
        if self.focus is not None and self.focus_column is None:
            return _empty_rules(), itemsets
        rules = association_rules(
            itemsets,
            min_confidence=self.params.min_confidence,
            min_lift=self.params.min_lift,
            redundant="flag",
            antecedent_column=self.focus_column,
            memory_budget_mb=self.budget,
        )
        return rules, itemsets

    def auto(self) -> tuple[pd.DataFrame, FrequentItemsets, SupportChoice]:
        floor = _floor_count(self.baskets.n_baskets) / self.baskets.n_baskets
        target = TARGET_ITEM_RULES if self.focus else TARGET_RULES
        best: tuple[pd.DataFrame, FrequentItemsets, float] | None = None
        for support in self._ladder(floor):
            try:
                rules, itemsets = self.at(support)
            except MemoryBudgetError:
                if best is None:
                    raise
                return self._chosen(best, "a lower support would not fit in memory")
            best = (rules, itemsets, support)
            useful = int((~rules["redundant"]).sum())
            if useful >= target:
                return self._chosen(best, f"the highest support giving at least {target} rules")
            if len(itemsets) > MAX_AUTO_ITEMSETS:
                return self._chosen(best, "lower supports would find too many item sets")
        assert best is not None
        floor_count = _floor_count(self.baskets.n_baskets)
        reason = f"the lowest support allowed ({floor_count} baskets; rarer sets are noise)"
        return self._chosen(best, reason)

    def _ladder(self, floor: float) -> list[float]:
        """Supports to try, highest first, ending at the floor; none above the item's own."""
        ceiling = 1.0
        if self.focus is not None:
            ceiling = self.baskets.item_counts[self.focus.name] / self.baskets.n_baskets
        steps = [step for step in SUPPORT_LADDER if floor < step <= ceiling]
        return [*steps, floor]

    @staticmethod
    def _chosen(
        best: tuple[pd.DataFrame, FrequentItemsets, float], reason: str
    ) -> tuple[pd.DataFrame, FrequentItemsets, SupportChoice]:
        rules, itemsets, support = best
        return rules, itemsets, SupportChoice(support, auto=True, reason=reason)


def _kept(baskets: Baskets, focus: ItemMatch | None) -> bool:
    return focus is not None and focus.name in baskets.items


def _empty_rules() -> pd.DataFrame:
    frame = pd.DataFrame({name: [] for name in RULE_COLUMNS})
    frame["redundant"] = np.empty(0, dtype=bool)
    return frame


# -- item matching ---------------------------------------------------------------------


def _fold(text: str) -> str:
    """Case-, width- and space-insensitive form of a name (NFKC folds full-width letters)."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).casefold()).strip()


def match_item(query: str, names: Sequence[str]) -> ItemMatch:
    """The item `query` means, from names ordered most popular first.

    Tries, in order: the same name ignoring case and width; names containing the query
    (or contained in it); names containing every word of the query; close spellings.
    Among several matches the most popular wins and the rest are listed.
    """
    wanted = _fold(query)
    if not wanted:
        raise BadParameterError("item= needs a product name.", hint='Example: item="green tea"')
    folded = [_fold(name) for name in names]
    for matcher in (_exact, _substring, _all_words, _close):
        found = matcher(wanted, folded)
        if found:
            return ItemMatch(names[found[0]], [names[index] for index in found[1:6]])
    raise BadParameterError(
        f"No item matches '{query}'.", hint=_suggestions(wanted, folded, list(names))
    )


def _exact(wanted: str, folded: list[str]) -> list[int]:
    return [index for index, name in enumerate(folded) if name == wanted]


def _substring(wanted: str, folded: list[str]) -> list[int]:
    inside = [index for index, name in enumerate(folded) if wanted in name]
    # A query longer than a name ("green tea 100g" for "green tea") still means it.
    around = [index for index, name in enumerate(folded) if len(name) >= 2 and name in wanted]
    return inside or sorted(around, key=lambda index: -len(folded[index]))


def _all_words(wanted: str, folded: list[str]) -> list[int]:
    words = wanted.split()
    if len(words) < 2:
        return []
    return [index for index, name in enumerate(folded) if all(word in name for word in words)]


def _close(wanted: str, folded: list[str]) -> list[int]:
    close = difflib.get_close_matches(wanted, folded, n=6, cutoff=0.75)
    position = {name: index for index, name in reversed(list(enumerate(folded)))}
    return [position[name] for name in close]


def _suggestions(wanted: str, folded: list[str], names: list[str]) -> str:
    close = difflib.get_close_matches(wanted, folded, n=5, cutoff=0.3)
    if not close:
        # Share one character at least (works for Chinese names), most popular first.
        close = [name for name in folded if set(name) & set(wanted)][:5]
    position = {name: index for index, name in reversed(list(enumerate(folded)))}
    shown = [names[position[name]] for name in close]
    if not shown:
        return "Send /rules without item= to see the items that sell together."
    return "Closest names: " + ", ".join(shown)


# -- the reply -------------------------------------------------------------------------


def build_report(result: RuleResult, params: RulesParams, *, has_category: bool) -> Report:
    """Summary text, the top rules in words and numbers, a chart, a CSV and follow-ups."""
    named = _with_names(result.rules, result.baskets.items)
    useful = _ranked(named[~named["redundant"]], params.sort)
    top = useful.head(params.top)
    unit = _unit_words(result.baskets.unit)
    title = f"What goes with {result.focus.name}" if result.focus else "What sells together"

    tables = []
    charts_ = []
    if len(top):
        tables = [
            Table(
                _words_table(top, unit, result.focus.name if result.focus else None),
                caption=f"Top {len(top)} rules by {params.sort}",
            ),
            Table(_numbers_table(top), caption="The same rules in numbers"),
        ]
        charts_ = [Chart(rules_chart(useful, top, title), caption=_chart_caption())]
    return Report(
        title=title,
        text=_summary(result, params, useful, top, unit),
        tables=tables,
        charts=charts_,
        files=[Attachment("rules.csv", rules_csv(named, params.sort), caption=_csv_caption())],
        facts=_facts(result, useful, top),
        followups=_followups(result, params, top, has_category=has_category),
    )


def _with_names(rules: pd.DataFrame, items: list[str]) -> pd.DataFrame:
    names = np.asarray(items, dtype=object)
    named = rules.copy()
    named["antecedents"] = [tuple(names[list(side)]) for side in rules["antecedents"]]
    named["consequents"] = [tuple(names[list(side)]) for side in rules["consequents"]]
    return named


def _ranked(rules: pd.DataFrame, sort: Metric) -> pd.DataFrame:
    # Ties broken by confidence, then support, then names, so the order is reproducible.
    keys = pd.DataFrame(
        {
            "metric": rules[sort],
            "confidence": rules["confidence"],
            "support": rules["support"],
            "names": [
                " + ".join(left + right)
                for left, right in zip(rules["antecedents"], rules["consequents"], strict=True)
            ],
        },
        index=rules.index,
    )
    order = keys.sort_values(
        ["metric", "confidence", "support", "names"],
        ascending=[False, False, False, True],
        kind="stable",
    ).index
    return rules.loc[order]


def _unit_words(unit: str) -> tuple[str, str]:
    """Singular and plural for one basket: order(s), shopping day(s), basket(s)."""
    return {
        "order": ("order", "orders"),
        "customer and day": ("shopping day", "shopping days"),
        "customer": ("customer", "customers"),
    }.get(unit, ("basket", "baskets"))


def _join(names: Sequence[str]) -> str:
    names = [str(name) for name in names]
    if len(names) <= 2:
        return " and ".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def rule_sentence(rule: pd.Series, unit: tuple[str, str]) -> str:
    """One rule as a shop owner says it."""
    return (
        f"Customers who buy {_join(rule['antecedents'])} also buy "
        f"{_join(rule['consequents'])} in {_percent(rule['confidence'])} of those "
        f"{unit[1]}, {_times(rule['lift'])} more often than average "
        f"({int(rule['count']):,} {unit[1]})."
    )


def _percent(share: float) -> str:
    value = 100 * share
    if value >= 10:
        return f"{value:.0f} %"
    if value >= 1:
        return f"{value:.1f} %"
    return f"{value:.2g} %"


def _times(lift: float) -> str:
    return f"{lift:.1f}x" if lift < 100 else f"{lift:,.0f}x"


def _words_table(top: pd.DataFrame, unit: tuple[str, str], focus: str | None) -> pd.DataFrame:
    if focus is not None:
        # Every rule has the item on the left: show only what else is there, so rows that
        # differ only after a long shared name do not look the same on a phone.
        return _focus_words_table(top, unit, focus)
    return pd.DataFrame(
        {
            "customers who buy": [_join(side) for side in top["antecedents"]],
            "also buy": [_join(side) for side in top["consequents"]],
            f"in % of those {unit[1]}": [_percent(value) for value in top["confidence"]],
            "vs average": [_times(value) for value in top["lift"]],
        }
    ).reset_index(drop=True)


def _focus_words_table(top: pd.DataFrame, unit: tuple[str, str], focus: str) -> pd.DataFrame:
    others = [[name for name in side if name != focus] for side in top["antecedents"]]
    return pd.DataFrame(
        {
            "in a basket with it and": [_join(names) if names else "–" for names in others],
            "customers also buy": [_join(side) for side in top["consequents"]],
            f"in % of those {unit[1]}": [_percent(value) for value in top["confidence"]],
            "vs average": [_times(value) for value in top["lift"]],
        }
    ).reset_index(drop=True)


def _numbers_table(top: pd.DataFrame) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "#": range(1, len(top) + 1),
            "rule": [
                f"{' + '.join(left)} -> {' + '.join(right)}"
                for left, right in zip(top["antecedents"], top["consequents"], strict=True)
            ],
            "support": top["support"].round(4).to_numpy(),
            "confidence": top["confidence"].round(3).to_numpy(),
            "lift": top["lift"].round(2).to_numpy(),
            "leverage": top["leverage"].round(4).to_numpy(),
            "conviction": top["conviction"].round(2).to_numpy(),
            "count": top["count"].astype(int).to_numpy(),
        }
    )
    return frame


def _summary(
    result: RuleResult,
    params: RulesParams,
    useful: pd.DataFrame,
    top: pd.DataFrame,
    unit: tuple[str, str],
) -> str:
    baskets = result.baskets
    lines = [_data_line(baskets, unit, params)]
    if result.focus is not None:
        lines.append(_focus_line(result, unit))
    lines.append(_support_line(result.support, baskets.n_baskets, unit))
    hidden = int(result.rules["redundant"].sum())
    found = f"{len(useful):,} rules with confidence >= {_percent(params.min_confidence)}"
    found += f" and lift >= {params.min_lift:g}"
    if hidden:
        found += f" ({hidden:,} more are hidden: a shorter rule says the same or more)"
    lines.append(found + ".")
    if len(top) == 0:
        lines.append(_nothing_found(result, params))
        return "\n".join(lines)
    lines.append("")
    lines.append(f"Strongest by {params.sort}:")
    lines.extend(
        f"{rank}. {rule_sentence(rule, unit)}"
        for rank, (_, rule) in enumerate(top.head(HIGHLIGHTS).iterrows(), start=1)
    )
    if not _beyond_chance(useful, baskets.n_baskets):
        lines.append(
            f"Careful: none of these rules stands out from chance. With {baskets.n_baskets:,} "
            f"{unit[1]}, items bought independently of each other would meet this often too, "
            "so they are no basis for bundles."
        )
    return "\n".join(lines)


def _beyond_chance(rules: pd.DataFrame, n_baskets: int) -> bool:
    """Whether any rule's count is well above what independent purchases would give.

    Under independence a rule's count is about Poisson with mean n x P(A) x P(C); a count
    CHANCE_Z standard deviations above that mean comes by luck about once in 700 rules, so
    when not one rule reaches it, the reply says the rules may well be chance.
    """
    expected = rules["antecedent support"] * rules["consequent support"] * n_baskets
    z = (rules["count"] - expected) / np.sqrt(expected.clip(lower=1e-9))
    return bool((z >= CHANCE_Z).any())


def _data_line(baskets: Baskets, unit: tuple[str, str], params: RulesParams) -> str:
    items = "categories" if params.level == "category" else "products"
    return (
        f"{baskets.n_baskets:,} {unit[1]} ({baskets.multi_item:,} with two or more "
        f"{items}), {len(baskets.item_counts):,} {items}; returns left out."
    )


def _focus_line(result: RuleResult, unit: tuple[str, str]) -> str:
    focus = result.focus
    assert focus is not None
    count = int(result.baskets.item_counts[focus.name])
    line = (
        f"{focus.name} is in {count:,} of {result.baskets.n_baskets:,} {unit[1]} "
        f"(support {_percent(count / result.baskets.n_baskets)})."
    )
    if focus.others:
        line += " Also matched: " + ", ".join(focus.others) + "."
    return line


def _support_line(support: SupportChoice, n_baskets: int, unit: tuple[str, str]) -> str:
    count = min_count_for(support.value, n_baskets)
    line = (
        f"min_support={support.value:g}: a set of items counts when it is in at least "
        f"{count:,} {unit[1] if count != 1 else unit[0]}"
    )
    if support.auto:
        line += f"; chosen automatically as {support.reason}"
    return line + "."


def _nothing_found(result: RuleResult, params: RulesParams) -> str:
    if result.focus is not None and result.focus.name not in result.baskets.items:
        return (
            f"{result.focus.name} is in too few baskets for rules at this support; try a "
            "min_support below its own support."
        )
    return "No rules passed. Try a lower min_support, min_confidence or min_lift."


def rules_chart(useful: pd.DataFrame, top: pd.DataFrame, title: str) -> bytes:
    """Support vs confidence of every rule, coloured by lift; top rules numbered."""
    shown = useful.head(CHART_POINTS)
    figure = charts.new_figure(f"{title}: support vs confidence")
    ax = figure.add_subplot()
    points = ax.scatter(
        100 * shown["support"],
        100 * shown["confidence"],
        c=shown["lift"],
        cmap="viridis",
        s=22,
        alpha=0.75,
        linewidths=0,
    )
    for rank, (_, rule) in enumerate(top.iterrows(), start=1):
        ax.annotate(
            str(rank),
            (100 * rule["support"], 100 * rule["confidence"]),
            xytext=(4, 4),
            textcoords="offset points",
            fontsize=10,
        )
    if shown["support"].max() > 10 * shown["support"].min():
        charts.log_scale(ax, "x")
    ax.set_xlabel("support: % of all baskets with every item of the rule")
    ax.set_ylabel("confidence, %")
    figure.colorbar(points, ax=ax, label="lift")
    return charts.to_png(figure)


def _chart_caption() -> str:
    return "Each dot is a rule; numbers mark the top rules. Upper right and bright = strong."


def rules_csv(named: pd.DataFrame, sort: Metric) -> bytes:
    """Every rule that passed the thresholds, redundant ones flagged, best first."""
    frame = _ranked(named, sort).copy()
    frame["antecedents"] = [" + ".join(side) for side in frame["antecedents"]]
    frame["consequents"] = [" + ".join(side) for side in frame["consequents"]]
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    # A byte-order mark makes Excel read the file as UTF-8, so Chinese names survive.
    return buffer.getvalue().encode("utf-8-sig")


def _csv_caption() -> str:
    return "Every rule with support, confidence, lift, leverage, conviction and count"


def _facts(
    result: RuleResult, useful: pd.DataFrame, top: pd.DataFrame
) -> dict[str, float | int | str]:
    facts: dict[str, float | int | str] = {
        "rules": len(useful),
        "redundant_rules": int(result.rules["redundant"].sum()),
        "min_support": result.support.value,
        "min_support_auto": "yes" if result.support.auto else "no",
        "baskets": result.baskets.n_baskets,
        "items": len(result.baskets.item_counts),
        "itemsets": len(result.itemsets),
    }
    if len(top):
        first = top.iloc[0]
        facts["top_rule"] = f"{' + '.join(first['antecedents'])} -> " + " + ".join(
            first["consequents"]
        )
        facts["top_lift"] = round(float(first["lift"]), 3)
    if result.focus is not None:
        count = int(result.baskets.item_counts[result.focus.name])
        facts["item"] = result.focus.name
        facts["item_support"] = round(count / result.baskets.n_baskets, 6)
    return facts


def _followups(
    result: RuleResult, params: RulesParams, top: pd.DataFrame, *, has_category: bool
) -> list[Followup]:
    base = f' item="{result.focus.name}"' if result.focus else ""
    support = result.support.value
    lower = next((step for step in SUPPORT_LADDER if step < support), support / 2)
    higher = next((step for step in reversed(SUPPORT_LADDER) if step > support), None)
    followups = [Followup("More rules", f"/rules min_support={lower:g}{base}")]
    if higher is not None and len(top):
        followups.append(Followup("Fewer, stronger", f"/rules min_support={higher:g}{base}"))
    if params.sort != "confidence":
        followups.append(Followup("By confidence", f"/rules sort=confidence{base}"))
    if has_category and params.level != "category" and result.focus is None:
        followups.append(Followup("Categories", "/rules level=category"))
    if len(top) and result.focus is None:
        product = top.iloc[0]["consequents"][0]
        followups.append(
            Followup(f"With {charts.shorten(product, 20)}", f'/rules item="{product}"')
        )
    return followups
