"""Frequent itemsets of baskets: vectorised pattern growth (default) and level-wise apriori.

Both miners take a basket matrix (scipy CSR, one row per basket, one column per item, any
non-zero meaning "in the basket") and return the same `FrequentItemsets`: every itemset
whose support (share of baskets containing it) is at least `min_support`, with its basket
count. They agree exactly with mlxtend's `fpgrowth` and `apriori`, which the tests check.

Why not mlxtend itself: it walks a Python object tree one basket at a time, which takes
tens of seconds and over a gigabyte on half a million baskets. Here every step is a numpy
pass over flat integer arrays, so Python overhead is per level, not per itemset.

`pattern_growth` ("fpgrowth") grows itemsets from projected baskets, as FP-growth does,
without generating candidates that never occur. Level k keeps one projected row per
(basket, frequent k-itemset P in it) listing the frequent (k+1)-itemsets P+j in the basket;
pairs of entries in a row are exactly the (k+2)-itemsets that occur, so one `bincount`
over all pairs counts the whole next level. It differs from the textbook algorithm in
holding projected rows in flat arrays instead of a prefix tree, and in going breadth first
so that each level is a handful of vectorised passes.

`apriori` is the classic level-wise search: candidates of size k+1 are joined from
frequent k-itemsets sharing a prefix, pruned when any k-subset is infrequent, and counted
against the baskets (pairs by one sparse matrix product, longer ones by AND-ing bit-packed
basket sets and counting bits).

Itemsets are stored as a prefix tree in arrays: node i is the itemset of node `parent[i]`
plus item `item[i]`, items ascending inside an itemset, so each itemset has one node and
lookups are binary searches.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from storage.errors import BadParameterError, MemoryBudgetError

Algorithm = Literal["fpgrowth", "apriori"]

#: Pairs generated per vectorised chunk (~24 bytes each while counting). Small enough that
#: the temporaries stay under the allocator's mmap threshold and are reused, not re-faulted.
PAIR_CHUNK = 1_000_000
#: Bytes of bit-packed basket sets AND-ed per chunk in apriori.
BITSET_CHUNK_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class FrequentItemsets:
    """Frequent itemsets as a prefix tree in arrays, in order of size, parent and item.

    Items are numbered rarest first (`columns[i]` is item i's column in the basket
    matrix); inside an itemset they ascend in that numbering, which is the order
    `members` returns and `lookup` expects.

    Attributes:
        parent: node of the itemset minus its last item, -1 for single items.
        item: the last item (in the rarest-first numbering).
        count: number of baskets that contain the itemset.
        size: number of items in the itemset.
        n_baskets: number of baskets the supports are shares of.
        min_count: the smallest count that was frequent.
        columns: basket-matrix column of each item number.
    """

    parent: np.ndarray
    item: np.ndarray
    count: np.ndarray
    size: np.ndarray
    n_baskets: int
    min_count: int
    columns: np.ndarray

    def __len__(self) -> int:
        return len(self.item)

    @property
    def support(self) -> np.ndarray:
        return self.count / self.n_baskets

    @property
    def max_size(self) -> int:
        return int(self.size.max()) if len(self) else 0

    def members(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Nodes of all itemsets of `size` items, and their items as a (nodes x size) array."""
        nodes = np.flatnonzero(self.size == size)
        return nodes, _items_of(self, nodes, size)

    def lookup(self, items: np.ndarray) -> np.ndarray:
        """Nodes of itemsets given as rows of ascending items; -1 where not frequent."""
        nodes = np.full(len(items), -1, dtype=np.int64)
        if len(self) == 0:
            return nodes
        keys = self._keys()
        found = np.ones(len(items), dtype=bool)
        for column in range(items.shape[1]):
            wanted = (nodes + 1) * self._key_base() + items[:, column]
            position = np.searchsorted(keys, wanted)
            position = np.minimum(position, len(keys) - 1)
            found &= keys[position] == wanted
            nodes = np.where(found, position, -1)
        return nodes

    def to_frame(self, names: list[str] | np.ndarray | None = None) -> pd.DataFrame:
        """A frame like mlxtend's: `support` and `itemsets` (frozensets of names or columns)."""
        labels = np.asarray(names, dtype=object) if names is not None else None
        itemsets: list[frozenset] = []
        order: list[np.ndarray] = []
        for size in range(1, self.max_size + 1):
            nodes, items = self.members(size)
            values = self.columns[items]
            values = labels[values] if labels is not None else values
            itemsets.extend(frozenset(row) for row in values.tolist())
            order.append(nodes)
        nodes = np.concatenate(order) if order else np.empty(0, dtype=np.int64)
        return pd.DataFrame({"support": self.support[nodes], "itemsets": itemsets})

    def _key_base(self) -> int:
        return len(self.columns) + 1

    def _keys(self) -> np.ndarray:
        # Nodes are sorted by (size, parent, item) and parents of a level come after every
        # parent of the level before, so these keys ascend with the node number.
        return (self.parent.astype(np.int64) + 1) * self._key_base() + self.item


def min_count_for(min_support: float, n_baskets: int) -> int:
    """The smallest basket count c with c / n_baskets >= min_support, as floats compare.

    Matching the float comparison (not `ceil(min_support * n)`, which rounds 0.1 * 30 up to
    4) keeps the boundary identical to mlxtend's `support >= min_support` filter.
    """
    count = max(1, math.ceil(min_support * n_baskets))
    while count > 1 and (count - 1) / n_baskets >= min_support:
        count -= 1
    while count / n_baskets < min_support:
        count += 1
    return count


def mine(
    baskets: sp.spmatrix,
    *,
    min_support: float,
    max_len: int | None = None,
    algo: Algorithm = "fpgrowth",
    n_baskets: int | None = None,
    memory_budget_mb: float = 1024,
) -> FrequentItemsets:
    """All itemsets with support >= `min_support` and at most `max_len` items.

    Args:
        baskets: one row per basket, one column per item; non-zero means present.
        n_baskets: the support denominator when `baskets` leaves out rows with no items
            of interest (defaults to the number of rows).
        memory_budget_mb: raise `MemoryBudgetError` instead of growing past this.
    """
    if not 0 < min_support <= 1:
        raise BadParameterError(f"min_support must be in (0, 1], not {min_support}.")
    if max_len is not None and max_len < 1:
        raise BadParameterError(f"max_len must be at least 1, not {max_len}.")
    if algo not in ("fpgrowth", "apriori"):
        raise BadParameterError(f"algo must be fpgrowth or apriori, not {algo!r}.")
    total = baskets.shape[0] if n_baskets is None else n_baskets
    if total <= 0:
        raise BadParameterError("There are no baskets to mine.")

    min_count = min_count_for(min_support, total)
    reduced = _FrequentItemMatrix.of(baskets, min_count)
    levels = _Levels(reduced.columns, total, min_count)
    levels.add(np.full(reduced.n_items, -1), np.arange(reduced.n_items), reduced.counts)
    limit = max_len or reduced.n_items
    budget = int(memory_budget_mb * 1024 * 1024)
    if reduced.n_items >= 2 and limit >= 2:
        miner = _PatternGrowth if algo == "fpgrowth" else _Apriori
        miner(reduced, levels, limit, budget).run()
    return levels.result()


@dataclass(frozen=True)
class _FrequentItemMatrix:
    """Baskets restricted to frequent items, renumbered rarest first, entries ascending.

    Rarest first keeps projected rows short: a rare prefix has few frequent extensions,
    which is the order Eclat and most FP-growth implementations settle on too.
    """

    indptr: np.ndarray
    indices: np.ndarray
    counts: np.ndarray
    columns: np.ndarray

    @property
    def n_items(self) -> int:
        return len(self.columns)

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    @classmethod
    def of(cls, baskets: sp.spmatrix, min_count: int) -> _FrequentItemMatrix:
        matrix = sp.csr_matrix(baskets)
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
        counts = np.bincount(matrix.indices, minlength=matrix.shape[1])
        frequent = np.flatnonzero(counts >= min_count)
        columns = frequent[np.argsort(counts[frequent], kind="stable")]

        number = np.full(matrix.shape[1], -1, dtype=np.int64)
        number[columns] = np.arange(len(columns))
        renumbered = number[matrix.indices]
        keep = renumbered >= 0
        row_of_entry = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
        kept_per_row = np.bincount(row_of_entry[keep], minlength=matrix.shape[0])
        reduced = sp.csr_matrix(
            (np.ones(int(keep.sum()), dtype=bool), renumbered[keep], _indptr(kept_per_row)),
            shape=(matrix.shape[0], len(columns)),
        )
        reduced.has_sorted_indices = False
        reduced.sort_indices()
        return cls(
            indptr=reduced.indptr.astype(np.int64),
            indices=reduced.indices.astype(np.int64),
            counts=counts[columns],
            columns=columns,
        )

    def csr(self) -> sp.csr_matrix:
        data = np.ones(len(self.indices), dtype=bool)
        shape = (self.n_rows, self.n_items)
        return sp.csr_matrix((data, self.indices, self.indptr), shape=shape)


def _indptr(lengths: np.ndarray) -> np.ndarray:
    return np.r_[0, np.cumsum(lengths)].astype(np.int64)


class _Levels:
    """Collects the prefix-tree arrays level by level."""

    def __init__(self, columns: np.ndarray, n_baskets: int, min_count: int) -> None:
        self.columns = columns
        self.n_baskets = n_baskets
        self.min_count = min_count
        self.parent: list[np.ndarray] = []
        self.item: list[np.ndarray] = []
        self.count: list[np.ndarray] = []
        self.n_nodes = 0

    @property
    def depth(self) -> int:
        return len(self.parent)

    def add(self, parent: np.ndarray, item: np.ndarray, count: np.ndarray) -> np.ndarray:
        """Append one level (already in parent, item order); return its node numbers."""
        self.parent.append(np.asarray(parent, dtype=np.int64))
        self.item.append(np.asarray(item, dtype=np.int64))
        self.count.append(np.asarray(count, dtype=np.int64))
        first = self.n_nodes
        self.n_nodes += len(item)
        return np.arange(first, self.n_nodes, dtype=np.int64)

    def last(self) -> np.ndarray:
        """Node numbers of the deepest level."""
        return np.arange(self.n_nodes - len(self.item[-1]), self.n_nodes, dtype=np.int64)

    def result(self) -> FrequentItemsets:
        sizes = [
            np.full(len(part), depth, dtype=np.int16)
            for depth, part in enumerate(self.item, start=1)
        ]
        return FrequentItemsets(
            parent=np.concatenate(self.parent),
            item=np.concatenate(self.item),
            count=np.concatenate(self.count),
            size=np.concatenate(sizes),
            n_baskets=self.n_baskets,
            min_count=self.min_count,
            columns=self.columns,
        )


def _siblings(parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For nodes sorted by parent: each node's rank among its siblings, and sibling count."""
    starts = np.flatnonzero(np.r_[True, parent[1:] != parent[:-1]])
    group_sizes = np.diff(np.r_[starts, len(parent)])
    rank = np.arange(len(parent)) - np.repeat(starts, group_sizes)
    return rank, np.repeat(group_sizes, group_sizes)


@dataclass(frozen=True)
class _JoinSpace:
    """Numbers every join of two siblings (a, b), a before b, with one integer key.

    The keys of a node's joins are contiguous, nodes in order, so `bincount` counts all
    of them at once and `decode` recovers the pair from a key by binary search. The key
    of (a, b) is `base[a] + rank[b]`.
    """

    rank: np.ndarray
    base: np.ndarray
    start: np.ndarray
    size: int

    @classmethod
    def of(cls, parent: np.ndarray) -> _JoinSpace:
        rank, group_size = _siblings(parent)
        later = group_size - rank - 1
        start = np.cumsum(later) - later
        return cls(rank=rank, base=start - rank - 1, start=start, size=int(later.sum()))

    def decode(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The (a, b) node pair of each key."""
        a = np.searchsorted(self.start, keys, side="right") - 1
        return a, a + 1 + (keys - self.start[a])


class _LevelMiner:
    """What both miners work on: the frequent items, the levels found, and the limits."""

    def __init__(
        self, matrix: _FrequentItemMatrix, levels: _Levels, limit: int, budget: int
    ) -> None:
        self.matrix = matrix
        self.levels = levels
        self.limit = limit
        self.budget = budget


class _PatternGrowth(_LevelMiner):
    """Level-wise pattern growth over projected baskets (see the module docstring).

    Row r of level k is one basket projected on a frequent k-itemset P; its entries are
    the level's local numbers of the frequent (k+1)-itemsets P+j in the basket, ascending.
    """

    def run(self) -> None:
        indptr, entries = _rows_of(
            np.repeat(np.arange(self.matrix.n_rows), np.diff(self.matrix.indptr)),
            self.matrix.indices,
        )
        parent = np.full(self.matrix.n_items, -1)
        item = np.arange(self.matrix.n_items)
        while len(entries) and self.levels.depth < self.limit:
            indptr, entries, parent, item = self._next_level(indptr, entries, parent, item)

    def _next_level(
        self, indptr: np.ndarray, entries: np.ndarray, parent: np.ndarray, item: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        # Count every join of two entries sharing a row: each is an itemset that occurs.
        joins = _JoinSpace.of(parent)
        self._check_budget(0, joins.size)
        counts = np.zeros(joins.size, dtype=np.int64)
        for _, keys in _join_keys(indptr, entries, joins):
            counts += np.bincount(keys, minlength=joins.size)
        frequent_keys = np.flatnonzero(counts >= self.levels.min_count)
        self._check_budget(int(counts[frequent_keys].sum()), joins.size)

        # Record the new level, then project the rows onto it for the next round.
        a, b = joins.decode(frequent_keys)
        nodes = self.levels.last()
        self.levels.add(nodes[a], item[b], counts[frequent_keys])
        del counts
        local_of_key = np.full(joins.size, -1, dtype=np.int64)
        local_of_key[frequent_keys] = np.arange(len(frequent_keys))
        indptr, entries = self._project(indptr, entries, joins, local_of_key)
        return indptr, entries, a, item[b]

    def _project(
        self,
        indptr: np.ndarray,
        entries: np.ndarray,
        joins: _JoinSpace,
        local_of_key: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the next level: one per entry with a frequent join, keyed by that entry."""
        owners: list[np.ndarray] = []
        values: list[np.ndarray] = []
        for first, keys in _join_keys(indptr, entries, joins):
            local = local_of_key[keys]
            keep = local >= 0
            owners.append(first[keep])
            values.append(local[keep])
        return _rows_of(_concat(owners), _concat(values))

    def _check_budget(self, entries: int, keys: int) -> None:
        # Projected rows take ~16 bytes an entry while built (value and owner), counts and
        # the key map 16 bytes a join, and pair chunks a fixed ~100 MB on top.
        needed = entries * 16 + keys * 16 + PAIR_CHUNK * 24
        if needed > self.budget:
            raise MemoryBudgetError(
                f"Finding itemsets of {self.levels.depth + 1} items would need about "
                f"{needed / 2**20:,.0f} MB, over the {self.budget / 2**20:,.0f} MB budget.",
                hint="Raise min_support or lower max_len.",
            )


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def _rows_of(owner: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR-style rows from entries grouped by (non-decreasing) owner; drop rows under 2.

    A row with a single entry has no pair to join, so it cannot feed the next level.
    """
    if len(owner) == 0:
        return np.zeros(1, dtype=np.int64), value.astype(np.int64)
    boundary = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1], True])
    lengths = np.diff(boundary)
    long_rows = lengths >= 2
    return _indptr(lengths[long_rows]), value[np.repeat(long_rows, lengths)]


def _join_keys(
    indptr: np.ndarray, entries: np.ndarray, joins: _JoinSpace
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (first entry position, join key) of every pair of entries in a row, chunked.

    Pairs come in order of the first position, then the second, so the pairs of one
    first entry stay together and a chunk never splits a row.
    """
    lengths = np.diff(indptr)
    row_ends = np.cumsum(lengths * (lengths - 1) // 2)
    start_row, n_rows = 0, len(lengths)
    while start_row < n_rows:
        limit = (row_ends[start_row - 1] if start_row else 0) + PAIR_CHUNK
        stop_row = max(start_row + 1, int(np.searchsorted(row_ends, limit, side="right")))
        yield _pair_keys(indptr[start_row : stop_row + 1], entries, joins)
        start_row = stop_row


def _pair_keys(
    indptr: np.ndarray, entries: np.ndarray, joins: _JoinSpace
) -> tuple[np.ndarray, np.ndarray]:
    positions = np.arange(indptr[0], indptr[-1], dtype=np.int64)
    later = np.repeat(indptr[1:], np.diff(indptr)) - positions - 1
    first = np.repeat(positions, later)
    # The second entry of the i-th pair of a group runs from first + 1 to the row's end.
    offset = np.arange(len(first), dtype=np.int64) - np.repeat(np.cumsum(later) - later, later)
    second = first + 1 + offset
    chunk_entries = entries[indptr[0] : indptr[-1]]
    base = joins.base[chunk_entries]
    rank = joins.rank[chunk_entries]
    keys = np.repeat(base, later) + rank[second - indptr[0]]
    return first, keys


class _Apriori(_LevelMiner):
    """Level-wise candidate generation, pruning and counting (see the module docstring)."""

    def run(self) -> None:
        self.bits: np.ndarray | None = None
        while self.levels.depth < self.limit:
            parent, item = self._candidates()
            if len(item) == 0:
                return
            counts = self._count(parent, item)
            keep = counts >= self.levels.min_count
            if not keep.any():
                return
            self.levels.add(parent[keep], item[keep], counts[keep])

    def _candidates(self) -> tuple[np.ndarray, np.ndarray]:
        """Join siblings of the last level, then prune candidates with an infrequent subset."""
        so_far = self.levels.result()
        nodes = self.levels.last()
        joins = _JoinSpace.of(so_far.parent[nodes])
        self._check_budget(joins.size * 48)
        a, b = joins.decode(np.arange(joins.size, dtype=np.int64))
        parent, item = nodes[a], so_far.item[nodes[b]]
        if self.levels.depth < 2:
            return parent, item
        return self._prune(so_far, parent, item)

    def _prune(
        self, so_far: FrequentItemsets, parent: np.ndarray, item: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        size = self.levels.depth + 1
        items = np.column_stack([_items_of(so_far, parent, size - 1), item])
        keep = np.ones(len(item), dtype=bool)
        # Dropping either of the last two items leaves a joined parent, known frequent.
        for dropped in range(size - 2):
            subset = np.delete(items[keep], dropped, axis=1)
            keep[keep] = so_far.lookup(subset) >= 0
        return parent[keep], item[keep]

    def _count(self, parent: np.ndarray, item: np.ndarray) -> np.ndarray:
        size = self.levels.depth + 1
        items = np.column_stack([_items_of(self.levels.result(), parent, size - 1), item])
        if size == 2:
            return self._count_pairs(items)
        return self._count_bits(items)

    def _count_pairs(self, items: np.ndarray) -> np.ndarray:
        """All pair counts in one pass over the baskets: entry (i, j) of X'X."""
        csr = self.matrix.csr().astype(np.int32)
        gram = (csr.T @ csr).tocsr()
        return np.asarray(gram[items[:, 0], items[:, 1]]).ravel().astype(np.int64)

    def _count_bits(self, items: np.ndarray) -> np.ndarray:
        """Counts of longer candidates: AND the items' basket bitsets, count the bits."""
        bits = self._bitsets()
        chunk = max(1, BITSET_CHUNK_BYTES // (8 * bits.shape[1]))
        counts = np.empty(len(items), dtype=np.int64)
        for start in range(0, len(items), chunk):
            rows = items[start : start + chunk]
            acc = bits[rows[:, 0]]
            for column in range(1, rows.shape[1]):
                acc &= bits[rows[:, column]]
            counts[start : start + chunk] = np.bitwise_count(acc).sum(axis=1, dtype=np.int64)
        return counts

    def _bitsets(self) -> np.ndarray:
        """Basket sets of the frequent items, bit-packed (64 baskets a word), built once.

        Bit order inside a word does not matter: only counts of AND-ed sets are read.
        """
        if self.bits is not None:
            return self.bits
        n_rows, n_items = self.matrix.n_rows, self.matrix.n_items
        words = (n_rows + 63) // 64
        self._check_budget(n_items * words * 8 + BITSET_CHUNK_BYTES * 2)
        csc = self.matrix.csr().tocsc()
        packed = np.zeros((n_items, words * 8), dtype=np.uint8)
        step = max(1, BITSET_CHUNK_BYTES // max(n_rows, 1))
        for start in range(0, n_items, step):
            dense = csc[:, start : start + step].T.toarray()
            chunk = np.packbits(dense, axis=1)
            packed[start : start + step, : chunk.shape[1]] = chunk
        self.bits = packed.view(np.uint64)
        return self.bits

    def _check_budget(self, needed: int) -> None:
        if needed > self.budget:
            raise MemoryBudgetError(
                f"Apriori would need about {needed / 2**20:,.0f} MB for itemsets of "
                f"{self.levels.depth + 1} items, over the {self.budget / 2**20:,.0f} MB budget.",
                hint="Raise min_support, lower max_len, or use algo=fpgrowth.",
            )


def _items_of(itemsets: FrequentItemsets, nodes: np.ndarray, size: int) -> np.ndarray:
    """Items of the given nodes (all of `size` items) as a (nodes x size) array."""
    items = np.empty((len(nodes), size), dtype=np.int64)
    current = nodes
    for column in range(size - 1, -1, -1):
        items[:, column] = itemsets.item[current]
        current = itemsets.parent[current]
    return items


#: Columns of the rules frame, in order.
RULE_COLUMNS = (
    "antecedents",
    "consequents",
    "antecedent support",
    "consequent support",
    "support",
    "confidence",
    "lift",
    "leverage",
    "conviction",
    "count",
)
#: Bytes one rule costs in the frame (two tuples of numbers and eight metrics).
BYTES_PER_RULE = 400


def association_rules(
    itemsets: FrequentItemsets,
    *,
    min_confidence: float = 0.0,
    min_lift: float = 0.0,
    redundant: Literal["keep", "flag", "drop"] = "keep",
    antecedent_column: int | None = None,
    memory_budget_mb: float = 1024,
) -> pd.DataFrame:
    """Rules A -> C from every split of every frequent itemset, with their metrics.

    `antecedents` and `consequents` are tuples of basket-matrix columns. The metrics follow
    mlxtend's `association_rules`: support of A+C, confidence P(C|A), lift (confidence over
    the support of C), leverage (support minus the support expected if A and C were
    independent), conviction (infinite when the confidence is 1) and `count`, the number
    of baskets holding A+C.

    A rule is redundant when a more general rule (same consequent, an antecedent that is a
    proper subset) has at least its confidence: the longer antecedent adds nothing. The
    general rule passes every confidence and lift threshold the longer one does, so it is
    always among the results. `redundant` keeps such rules, flags them in a `redundant`
    column, or drops them. `antecedent_column` keeps only rules with that item on the left.
    """
    focus = None
    if antecedent_column is not None:
        matches = np.flatnonzero(itemsets.columns == antecedent_column)
        focus = int(matches[0]) if len(matches) else -1
    parts: list[_RuleBatch] = []
    for size in range(2, itemsets.max_size + 1):
        nodes, items = itemsets.members(size)
        for mask in range(1, (1 << size) - 1):
            chosen = _with_item_left(items, mask, focus)
            batch = _RuleBatch.split(itemsets, nodes[chosen], items[chosen], mask)
            keep = batch.passes(min_confidence, min_lift, itemsets.n_baskets)
            batch = batch.take(keep)
            if redundant != "keep" and batch.antecedent_size >= 2:
                batch = batch.flagged(itemsets, drop=redundant == "drop")
            if len(batch.nodes):
                parts.append(batch)
    kept = sum(len(part.nodes) for part in parts)
    if kept * BYTES_PER_RULE > memory_budget_mb * 1024 * 1024:
        raise MemoryBudgetError(
            f"There are {kept:,} rules, too many to list within the memory budget.",
            hint="Raise min_support, min_confidence or min_lift.",
        )
    frame = _rules_frame(itemsets, parts)
    if redundant == "flag":
        flags = [
            np.zeros(len(part.nodes), dtype=bool)
            if part.redundant_flags is None
            else part.redundant_flags
            for part in parts
        ]
        frame["redundant"] = np.concatenate(flags) if flags else np.empty(0, dtype=bool)
    return frame


def _with_item_left(items: np.ndarray, mask: int, focus: int | None) -> np.ndarray:
    """Rows whose antecedent (positions in `mask`) holds item `focus`; all when no focus."""
    if focus is None:
        return np.ones(len(items), dtype=bool)
    positions = _positions(mask, items.shape[1])
    return (items[:, positions] == focus).any(axis=1)


def _positions(mask: int, size: int) -> list[int]:
    return [position for position in range(size) if mask >> position & 1]


@dataclass(frozen=True)
class _RuleBatch:
    """Rules from splitting itemsets of one size the same way (antecedent positions `mask`).

    Counts are basket counts of the whole itemset (A+C), of A and of C.
    """

    nodes: np.ndarray
    items: np.ndarray
    mask: int
    antecedent: np.ndarray
    consequent: np.ndarray
    count: np.ndarray
    antecedent_count: np.ndarray
    consequent_count: np.ndarray
    redundant_flags: np.ndarray | None = None

    @classmethod
    def split(
        cls, itemsets: FrequentItemsets, nodes: np.ndarray, items: np.ndarray, mask: int
    ) -> _RuleBatch:
        size = items.shape[1]
        complement = ((1 << size) - 1) ^ mask
        # Every subset of a frequent itemset is frequent, so both lookups always succeed.
        antecedent = itemsets.lookup(items[:, _positions(mask, size)])
        consequent = itemsets.lookup(items[:, _positions(complement, size)])
        return cls(
            nodes,
            items,
            mask,
            antecedent,
            consequent,
            itemsets.count[nodes],
            itemsets.count[antecedent],
            itemsets.count[consequent],
        )

    @property
    def antecedent_size(self) -> int:
        return self.mask.bit_count()

    @property
    def consequent_size(self) -> int:
        return self.items.shape[1] - self.antecedent_size

    def take(self, keep: np.ndarray) -> _RuleBatch:
        return _RuleBatch(
            self.nodes[keep],
            self.items[keep],
            self.mask,
            self.antecedent[keep],
            self.consequent[keep],
            self.count[keep],
            self.antecedent_count[keep],
            self.consequent_count[keep],
            None if self.redundant_flags is None else self.redundant_flags[keep],
        )

    def flagged(self, itemsets: FrequentItemsets, *, drop: bool) -> _RuleBatch:
        """This batch with redundant rules marked, or left out when `drop`."""
        flags = self.redundant(itemsets)
        if drop:
            return self.take(~flags)
        return dataclasses.replace(self, redundant_flags=flags)

    def passes(self, min_confidence: float, min_lift: float, n_baskets: int) -> np.ndarray:
        confidence = self.count / self.antecedent_count
        lift = confidence / (self.consequent_count / n_baskets)
        return (confidence >= min_confidence) & (lift >= min_lift)

    def redundant(self, itemsets: FrequentItemsets) -> np.ndarray:
        """Whether some antecedent subset A' gives conf(A' -> C) >= conf(A -> C)."""
        size = self.items.shape[1]
        complement = ((1 << size) - 1) ^ self.mask
        found = np.zeros(len(self.nodes), dtype=bool)
        submask = (self.mask - 1) & self.mask
        while submask:
            general = itemsets.lookup(self.items[:, _positions(submask, size)])
            union = itemsets.lookup(self.items[:, _positions(submask | complement, size)])
            # conf' >= conf, cross-multiplied to stay in exact integers.
            general_hits = itemsets.count[union] * self.antecedent_count
            found |= general_hits >= self.count * itemsets.count[general]
            submask = (submask - 1) & self.mask
        return found

    def sides(self, columns: np.ndarray) -> tuple[list[tuple], list[tuple]]:
        """Antecedents and consequents as tuples of basket-matrix columns."""
        size = self.items.shape[1]
        complement = ((1 << size) - 1) ^ self.mask
        as_columns = columns[self.items]
        left = as_columns[:, _positions(self.mask, size)].tolist()
        right = as_columns[:, _positions(complement, size)].tolist()
        return [tuple(row) for row in left], [tuple(row) for row in right]


def _rules_frame(itemsets: FrequentItemsets, parts: list[_RuleBatch]) -> pd.DataFrame:
    """The rules of all batches as one frame with mlxtend's metric names (`RULE_COLUMNS`)."""
    antecedents: list[tuple] = []
    consequents: list[tuple] = []
    for part in parts:
        left, right = part.sides(itemsets.columns)
        antecedents.extend(left)
        consequents.extend(right)

    def gather(name: str) -> np.ndarray:
        values = [getattr(part, name) for part in parts]
        return np.concatenate(values) if values else np.empty(0, dtype=np.int64)

    n = itemsets.n_baskets
    count, antecedent, consequent = (
        gather("count"),
        gather("antecedent_count"),
        gather("consequent_count"),
    )
    support, antecedent_support, consequent_support = count / n, antecedent / n, consequent / n
    confidence = count / antecedent if len(count) else np.empty(0)
    # Confidence 1 divides by zero: conviction is infinite there, as in mlxtend.
    with np.errstate(divide="ignore", invalid="ignore"):
        conviction = np.where(
            count < antecedent, (1 - consequent_support) / (1 - confidence), np.inf
        )
    frame = pd.DataFrame(
        {
            "antecedents": antecedents,
            "consequents": consequents,
            "antecedent support": antecedent_support,
            "consequent support": consequent_support,
            "support": support,
            "confidence": confidence,
            "lift": confidence / consequent_support,
            "leverage": support - antecedent_support * consequent_support,
            "conviction": conviction,
            "count": count,
        }
    )
    return frame.loc[:, list(RULE_COLUMNS)]
