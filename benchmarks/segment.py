"""Time `/segment` on an Online-Retail-sized export next to a plain pandas + scikit-learn run.

The file is the demo generator's, at the shape of the UCI "Online Retail" export (about
540,000 lines and 4,400 customers). Both sides work on the same data in the same process:

- ours: the file ingested as a chat upload is; timed from the stored dataset to a finished
  `Report` (SQL aggregation, KMeans with k=auto, names, table, chart and CSV), as a chat
  user would wait for it;
- baseline: the same lines already in a pandas DataFrame, a groupby per customer, log and
  scale, then KMeans with the same k=auto search (k 2-8, silhouette on 2,000 customers).
  It makes no chart and no CSV, so it is a lower bound on the modelling work.

Run: `python benchmarks/segment.py [--rows 540000] [--repeat 3]`. Target: ours under 3 s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

from storage.datasets import Dataset, get_dataset
from storage.demo import write_demo_csv
from storage.ingest import ingest_path
from storage.settings import Settings
from storage.store import open_store
from tools.segment import SegmentParams, SegmentTool

TARGET_SECONDS = 3.0


def load_export(path: Path) -> pd.DataFrame:
    """The export as typed columns, with ISO timestamps as the store keeps them."""
    frame = pd.read_csv(path, dtype={"InvoiceNo": str, "StockCode": str, "CustomerID": str})
    when = pd.to_datetime(frame["InvoiceDate"], format="%m/%d/%Y %H:%M")
    return frame.assign(InvoiceDate=when.dt.strftime("%Y-%m-%d %H:%M:%S"))


def ingest_export(path: Path, data_dir: Path) -> Dataset:
    """Upload the file the way a chat user does: ingestion detects roles and types."""
    settings = Settings(_env_file=None, data_dir=data_dir)
    engine = open_store(settings)
    started = time.perf_counter()
    ingest_path(engine, path, chat_id=1, settings=settings)
    print(f"ingested in {time.perf_counter() - started:.1f} s (not part of the timing below)")
    return get_dataset(engine, 1)


def run_ours(dataset: Dataset) -> tuple[float, int, int]:
    started = time.perf_counter()
    report = SegmentTool().run(dataset, SegmentParams())
    return time.perf_counter() - started, int(report.facts["k"]), int(report.facts["customers"])


def run_baseline(frame: pd.DataFrame) -> tuple[float, int, int]:
    """The textbook notebook version: pandas groupby, then scikit-learn KMeans."""
    started = time.perf_counter()
    sales = frame[(frame["Quantity"] > 0) & ~frame["InvoiceNo"].str.startswith("C")]
    sales = sales.dropna(subset=["CustomerID"])
    sales = sales.assign(
        amount=sales["Quantity"] * sales["UnitPrice"],
        day=pd.to_datetime(sales["InvoiceDate"]).dt.normalize(),
    )
    rfm = sales.groupby("CustomerID").agg(
        last=("day", "max"), orders=("InvoiceNo", "nunique"), spend=("amount", "sum")
    )
    rfm["recency"] = (sales["day"].max() - rfm["last"]).dt.days
    raw = rfm[["recency", "orders", "spend"]].clip(lower=0).to_numpy(dtype=float)
    features = StandardScaler().fit_transform(np.log1p(raw))
    scores = {}
    for k in range(2, 9):
        labels = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(features)
        scores[k] = silhouette_score(features, labels, sample_size=2000, random_state=0)
    best = max(scores, key=scores.get)
    KMeans(n_clusters=best, n_init=10, random_state=0).fit(features)
    return time.perf_counter() - started, best, len(rfm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=540_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        path = write_demo_csv(Path(folder) / "online_retail.csv", rows=args.rows, seed=7)
        frame = load_export(path)
        dataset = ingest_export(path, Path(folder) / "data")
        print(f"data: {len(frame):,} lines, {frame['CustomerID'].nunique():,} customers")

        ours = [run_ours(dataset) for _ in range(args.repeat)]
        baseline = [run_baseline(frame) for _ in range(args.repeat)]

    ours_time = statistics.median(result[0] for result in ours)
    base_time = statistics.median(result[0] for result in baseline)
    print(f"{'':28}{'ours':>10}{'baseline':>12}")
    print(f"{'median seconds':28}{ours_time:>10.2f}{base_time:>12.2f}")
    print(f"{'chosen k':28}{ours[0][1]:>10}{baseline[0][1]:>12}")
    print(f"{'customers':28}{ours[0][2]:>10,}{baseline[0][2]:>12,}")
    print(f"{'runs (s)':28}{' '.join(f'{r[0]:.2f}' for r in ours):>10}  ", end="")
    print(" ".join(f"{r[0]:.2f}" for r in baseline))
    verdict = "meets" if ours_time < TARGET_SECONDS else "MISSES"
    print(f"ours {verdict} the {TARGET_SECONDS:.0f} s target (includes chart and CSV)")


if __name__ == "__main__":
    main()
