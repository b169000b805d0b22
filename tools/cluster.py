"""`/cluster`: KMeans on any numeric columns of any dataset, plus the KMeans helpers.

`segment` builds on the helpers here (seeded KMeans, k by silhouette, column lookup), so
the two tools choose k and resolve user-typed column names the same way.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import Field
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from storage.datasets import Dataset, quote_identifier
from storage.errors import BadParameterError, EmptyDataError
from tools import charts
from tools.base import BaseTool, Chart, Followup, Params, Report, Table

SEED = 0
#: KMeans restarts: enough for a stable answer, few enough to stay fast.
N_INIT = 10
AUTO_K = range(2, 9)
#: Silhouette is quadratic in the points it scores, so k=auto scores a seeded sample.
SILHOUETTE_SAMPLE = 2000
#: KMeans is fitted on at most this many rows (a seeded sample); every row is then assigned.
FIT_ROWS = 50_000
#: k=auto compares k values on at most this many rows: enough to see which k separates best.
SEARCH_ROWS = 10_000
#: Rows read to find which columns are numeric.
PROBE_ROWS = 2000
#: With missing=auto, rows with gaps are dropped when they are at most this share.
DROP_SHARE = 0.05
CHART_POINTS = 4000
#: Column names that look like identifiers: numbers, but meaningless as distances.
IDENTIFIER = re.compile(r"(^|[\s_\-.])(id|code|no|number|编号|号)$|^id$", re.IGNORECASE)


# --- KMeans helpers shared with segment ------------------------------------------------------


def fit_kmeans(features: np.ndarray, k: int) -> KMeans:
    """A seeded KMeans, so the same data always gives the same clusters."""
    # One thread: tools run side by side in worker processes on a small machine, and
    # OpenMP threads spinning against each other made a 0.1 s fit take over a second.
    with threadpool_limits(limits=1):
        return KMeans(n_clusters=k, n_init=N_INIT, random_state=SEED).fit(features)


def auto_candidates(distinct: int) -> list[int]:
    """The k values k=auto may try: 2..8, each below the number of distinct points."""
    return [k for k in AUTO_K if k < distinct]


def choose_k(features: np.ndarray, candidates: list[int]) -> tuple[int, dict[int, float]]:
    """The candidate k with the best silhouette on a seeded sample, and every k's score."""
    sample = min(len(features), SILHOUETTE_SAMPLE)
    scores = {}
    for k in candidates:
        labels = fit_kmeans(features, k).labels_
        with threadpool_limits(limits=1):
            score = silhouette_score(features, labels, sample_size=sample, random_state=SEED)
        scores[k] = float(score)
    # Scores equal to 3 decimals are a tie; the smaller k is easier to act on.
    best = max(scores, key=lambda k: (round(scores[k], 3), -k))
    return best, scores


def why_k(k: int, silhouettes: dict[int, float], *, groups: str = "groups") -> str:
    """One sentence on why k=auto chose this k."""
    ranked = sorted(silhouettes.items(), key=lambda item: (-item[1], item[0]))
    others = ", ".join(f"k={other}: {score:.2f}" for other, score in ranked[1:3])
    tried = f"k={min(silhouettes)}-{max(silhouettes)}"
    if len(silhouettes) == 1:
        return f"k={k} is the only k the data allows (silhouette {silhouettes[k]:.2f})."
    return (
        f"k={k} was chosen because its {groups} are the most clearly separated of {tried} "
        f"(silhouette {silhouettes[k]:.2f}; next best {others})."
    )


def resolve_column(dataset: Dataset, word: str, *, parameter: str) -> str:
    """The column a user means by `word`: a role name or a column name, any case."""
    if word in dataset.roles:
        return dataset.roles[word]
    columns = visible_columns(dataset)
    by_lower = {column.lower(): column for column in columns}
    if word.lower() in by_lower:
        return by_lower[word.lower()]
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.5)
    suggestion = f" Did you mean {parameter}={by_lower[close[0]]}?" if close else ""
    raise BadParameterError(
        f"This dataset has no column '{word}'.{suggestion}",
        hint="Columns: " + ", ".join(columns[:30]),
    )


def visible_columns(dataset: Dataset) -> list[str]:
    """The dataset's own columns, without the ones ingestion derives (`_line_amount`, ...)."""
    probe = dataset.read_sql("SELECT * FROM {table} LIMIT 0")
    return [column for column in probe.columns if not column.startswith("_")]


# --- the tool --------------------------------------------------------------------------------


class ClusterParams(Params):
    """Parameters of `/cluster`."""

    k: Annotated[int, Field(ge=2, le=10)] | Literal["auto"] = Field(
        "auto", description="number of clusters, 2-10, or auto to choose by silhouette"
    )
    columns: str | None = Field(
        None, description="comma-separated columns to cluster on; default: all numeric ones"
    )
    missing: Literal["auto", "drop", "impute"] = Field(
        "auto",
        description="rows with gaps: drop them, impute column medians, or auto "
        f"(drop when at most {DROP_SHARE:.0%} of rows, else impute)",
    )


@dataclass(frozen=True)
class Prepared:
    """The numeric table to cluster and what was done to get it."""

    frame: pd.DataFrame
    notes: list[str]


class ClusterTool(BaseTool):
    """KMeans clusters on the numeric columns of any dataset."""

    name = "cluster"
    summary = "KMeans clusters on any numeric columns, with sizes, centres and a 2-D chart"
    help = (
        "Groups the rows of any table by its numeric columns (scaled so units do not "
        "matter) and shows each cluster's size and centre in the original units.\n"
        "Examples: /cluster, /cluster 4, /cluster columns=price,weight missing=impute"
    )
    params_model = ClusterParams
    positional = "k"
    phrases = (
        "cluster",
        "clusters",
        "clustering",
        "kmeans",
        "k-means",
        "group similar rows",
        "聚类",
        "聚类分析",
        "分组",
    )

    def run(self, dataset: Dataset, params: Params) -> Report:
        assert isinstance(params, ClusterParams)
        columns, notes = choose_columns(dataset, params.columns)
        frame = read_columns(dataset, columns)
        prepared = handle_missing(frame, params.missing)
        prepared = drop_constant(prepared)
        return cluster_report(prepared, params, notes=notes)


def choose_columns(dataset: Dataset, requested: str | None) -> tuple[list[str], list[str]]:
    """The columns to cluster on, and notes on what was left out and why."""
    probe = dataset.read_sql(f"SELECT * FROM {{table}} LIMIT {PROBE_ROWS}")
    numeric = [
        column
        for column in probe.columns
        if pd.api.types.is_numeric_dtype(probe[column])
        and not pd.api.types.is_bool_dtype(probe[column])
    ]
    if requested:
        words = [word.strip() for word in requested.split(",") if word.strip()]
        chosen = [resolve_column(dataset, word, parameter="columns") for word in words]
        not_numeric = [column for column in chosen if column not in numeric]
        if not_numeric:
            raise BadParameterError(
                f"Not numeric: {', '.join(not_numeric)}.",
                hint=_numeric_hint(numeric),
            )
        return list(dict.fromkeys(chosen)), []
    return _default_columns(dataset, numeric)


def _default_columns(dataset: Dataset, numeric: list[str]) -> tuple[list[str], list[str]]:
    role_columns = set(dataset.roles.values())
    skipped = [column for column in numeric if column in role_columns]
    identifiers = [
        column
        for column in numeric
        if column not in role_columns and IDENTIFIER.search(column.strip())
    ]
    chosen = [
        column
        for column in numeric
        if not column.startswith("_") and column not in role_columns and column not in identifiers
    ]
    if not chosen:
        left_out = skipped + identifiers
        if left_out:
            # Order data: its numbers are quantities and prices, which /cluster leaves out
            # unless asked, since /segment is the tool for customers.
            raise EmptyDataError(
                "Every numeric column here is an order field or an id, which /cluster "
                f"leaves out by default: {', '.join(left_out[:10])}.",
                hint=f"Name them to cluster anyway: /cluster columns={','.join(left_out[:3])}. "
                "For customer groups, /segment is the better tool.",
            )
        raise EmptyDataError(
            "This dataset has no numeric columns to cluster on.",
            hint=_numeric_hint([column for column in numeric if not column.startswith("_")]),
        )
    notes = []
    if skipped:
        notes.append(f"Left out columns mapped to roles: {', '.join(skipped)}.")
    if identifiers:
        notes.append(f"Left out identifier-like columns: {', '.join(identifiers)}.")
    return chosen, notes


def _numeric_hint(numeric: list[str]) -> str:
    if not numeric:
        return "Upload a table with numbers in it (prices, quantities, scores, ...)."
    return "Numeric columns: " + ", ".join(numeric[:30]) + ". Choose with columns=a,b,c."


def read_columns(dataset: Dataset, columns: list[str]) -> pd.DataFrame:
    """The chosen columns of every row, as floats."""
    selected = ", ".join(quote_identifier(column) for column in columns)
    frame = dataset.read_sql(f"SELECT {selected} FROM {{table}}")
    return frame.apply(pd.to_numeric, errors="coerce").astype(float)


def handle_missing(frame: pd.DataFrame, how: str) -> Prepared:
    """Drop or impute (column median) rows with missing values, and say what was done."""
    gaps = frame.isna().any(axis=1)
    count = int(gaps.sum())
    if count == 0:
        return Prepared(frame, [])
    if how == "auto":
        how = "drop" if count <= DROP_SHARE * len(frame) else "impute"
    if how == "drop":
        note = f"Dropped {count:,} of {len(frame):,} rows with missing values."
        return Prepared(frame[~gaps].reset_index(drop=True), [note])
    medians = frame.median()
    empty = [column for column in frame.columns if pd.isna(medians[column])]
    if empty:
        raise EmptyDataError(f"These columns have no values at all: {', '.join(empty)}.")
    per_column = ", ".join(
        f"{column} ({int(n):,})" for column, n in frame.isna().sum().items() if n
    )
    note = f"Filled missing values with the column median in {count:,} rows: {per_column}."
    return Prepared(frame.fillna(medians), [note])


def drop_constant(prepared: Prepared) -> Prepared:
    """Leave out columns with one value only: they cannot separate anything."""
    frame = prepared.frame
    constant = [column for column in frame.columns if frame[column].nunique() <= 1]
    if not constant:
        return prepared
    if len(constant) == len(frame.columns):
        raise EmptyDataError(
            "Every chosen column has a single value, so there is nothing to cluster on."
        )
    note = f"Left out columns with a single value: {', '.join(constant)}."
    return Prepared(frame.drop(columns=constant), [*prepared.notes, note])


def cluster_report(prepared: Prepared, params: ClusterParams, *, notes: list[str]) -> Report:
    """Fit KMeans and describe the clusters in the original units."""
    frame = prepared.frame
    features = StandardScaler().fit_transform(frame.to_numpy())
    fit_rows = _sample_rows(len(features), FIT_ROWS)
    search_rows = fit_rows[_sample_rows(len(fit_rows), SEARCH_ROWS)]
    k, silhouettes = _pick_k(features[search_rows], params.k, rows=len(frame))
    model = fit_kmeans(features[fit_rows], k)
    labels = _numbered_by_size(model.predict(features))

    table = centroid_table(frame, labels)
    text_lines = [
        f"{len(frame):,} rows in {k} clusters on {len(frame.columns)} column(s): "
        f"{', '.join(frame.columns)}."
    ]
    if silhouettes:
        text_lines.append(why_k(k, silhouettes, groups="clusters"))
    if len(fit_rows) < len(frame):
        text_lines.append(
            f"KMeans was fitted on a random sample of {len(fit_rows):,} rows; "
            "every row was then assigned to its nearest centre."
        )
    text_lines += notes + prepared.notes
    facts: dict[str, float | int | str] = {"k": k, "rows": len(frame)}
    if silhouettes:
        facts["silhouette"] = round(silhouettes[k], 3)
    return Report(
        title="Clusters",
        text="\n".join(text_lines),
        tables=[Table(table, caption="Cluster sizes and centres (averages, original units)")],
        charts=[Chart(cluster_chart(frame, features, labels), caption="Clusters in 2-D")],
        facts=facts,
        followups=[
            Followup(f"{other} clusters", f"/cluster {other}")
            for other in (k - 1, k + 1)
            if 2 <= other <= 10
        ],
    )


def _sample_rows(count: int, limit: int) -> np.ndarray:
    """Positions of a seeded random sample of at most `limit` of `count` rows, in order."""
    if count <= limit:
        return np.arange(count)
    return np.sort(np.random.default_rng(SEED).choice(count, limit, replace=False))


def _pick_k(features: np.ndarray, k: int | str, *, rows: int) -> tuple[int, dict[int, float]]:
    distinct = len(np.unique(features, axis=0))
    if k == "auto":
        candidates = auto_candidates(distinct)
        if not candidates:
            raise EmptyDataError(
                f"Only {rows} row(s) with {distinct} different value(s): too few to cluster.",
                hint="Clustering needs at least 3 rows that differ.",
            )
        return choose_k(features, candidates)
    if int(k) > distinct:
        raise BadParameterError(
            f"k={k} clusters need at least {k} different rows, and there are {distinct}.",
            hint=f"Try /cluster {max(2, distinct - 1)} or /cluster auto.",
        )
    return int(k), {}


def _numbered_by_size(labels: np.ndarray) -> np.ndarray:
    """Relabel clusters 1..k, largest first, so the numbering means something."""
    counts = np.bincount(labels)
    order = sorted(range(len(counts)), key=lambda label: (-counts[label], label))
    mapping = np.empty(len(counts), dtype=int)
    mapping[order] = np.arange(1, len(counts) + 1)
    return mapping[labels]


def centroid_table(frame: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    """Per cluster: rows, share of rows, and the mean of each column."""
    grouped = frame.groupby(labels)
    table = grouped.mean().round(2)
    table.insert(0, "share %", (100 * grouped.size() / len(frame)).round(1))
    table.insert(0, "rows", grouped.size())
    return table.rename_axis("cluster").reset_index()


def cluster_chart(frame: pd.DataFrame, features: np.ndarray, labels: np.ndarray) -> bytes:
    """The rows in 2-D (the two columns, or two principal components), coloured by cluster."""
    rows = np.arange(len(frame))
    if len(rows) > CHART_POINTS:
        rows = np.random.default_rng(SEED).choice(rows, CHART_POINTS, replace=False)
    # Sorted by cluster so the legend lists clusters in order.
    rows = rows[np.argsort(labels[rows], kind="stable")]
    groups = [f"cluster {label}" for label in labels[rows]]
    columns = list(frame.columns)
    if len(columns) == 2:
        x, y = frame.iloc[rows, 0], frame.iloc[rows, 1]
        x_label, y_label, title = columns[0], columns[1], f"Clusters: {columns[1]} vs {columns[0]}"
    elif len(columns) == 1:
        # One column: spread the points vertically by cluster so they do not overlap.
        x, y = frame.iloc[rows, 0], labels[rows] + _jitter(len(rows))
        x_label, y_label, title = columns[0], "cluster", f"Clusters by {columns[0]}"
    else:
        pca = PCA(n_components=2, random_state=SEED).fit(features)
        points = pca.transform(features[rows])
        x, y = points[:, 0], points[:, 1]
        share = pca.explained_variance_ratio_ * 100
        x_label = f"component 1 ({share[0]:.0f}% of variance)"
        y_label = f"component 2 ({share[1]:.0f}% of variance)"
        title = f"Clusters on {len(columns)} columns, projected to 2-D (PCA)"
    return charts.scatter(x, y, groups=groups, title=title, xlabel=x_label, ylabel=y_label)


def _jitter(count: int) -> np.ndarray:
    return np.random.default_rng(SEED).uniform(-0.2, 0.2, count)
