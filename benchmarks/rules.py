"""Speed, memory and agreement of the `rules` mining step against mlxtend.

    python benchmarks/rules.py [--groceries PATH] [--limit-s 300]

Data sets:

(a) Groceries, 9,835 baskets over 169 items (from the arules project), read from the CSV
    that --groceries names (skipped without it), mined at min_support=0.001;
(b) 500,000 generated baskets over 20,000 items with Zipf popularity and about 8 items a
    basket (seeded), mined at min_support=0.001.

Each contender runs in a fresh subprocess; the time is the mining call alone (input already
built) and the memory is the process's peak resident set size, input included. mlxtend gets
a boolean DataFrame of the items that can be frequent (its first step drops the others
anyway, and all 20,000 columns of (b) would take 10 GB dense). The itemsets and supports of
every contender are compared with ours. mlxtend's apriori runs with `low_memory=True`: its
default tests all candidates at once, which for the ~294,000 candidate pairs of (b) means a
500,000 x 294,000 x 2 boolean array. A contender that passes --limit-s is stopped and
reported as such.

Then the Groceries facts are checked, and `/rules` runs end to end (SQL, mining, rules,
chart, CSV) on a generated Online-Retail-sized shop: 20,000 orders over 4,000 products.
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SUPPORT = 0.001
SEED = 2024
#: Published or measured figures to print alongside ours.
ANCHORS = {
    "a": "mlxtend fpgrowth ~0.8 s; a C FP-growth 0.02 s",
    "b": "mlxtend fpgrowth 20-27 s, 1.3-1.8 GB; a C FP-growth 1.5 s, 0.4 GB",
}
TARGETS = "target on (b): >= 10x faster than mlxtend fpgrowth, < 1 GB peak, identical itemsets"
#: Groceries facts from the data's README (arules' published figures).
WHOLE_MILK_BASKETS = 2513
RULES_AT_0_005_CONF_0_5 = 120
E2E_TARGET_S = 3.0


# -- data ------------------------------------------------------------------------------


def groceries(path: Path) -> tuple[sp.csr_matrix, list[str]]:
    """Groceries as a basket x item matrix (one line per item in a basket in the CSV)."""
    lines = pd.read_csv(path, usecols=["basket_id", "item"])
    rows, _ = pd.factorize(lines["basket_id"])
    columns, names = pd.factorize(lines["item"])
    return _matrix(rows, columns, (rows.max() + 1, len(names))), list(names)


def zipf_baskets(
    n_baskets: int = 500_000, n_items: int = 20_000, mean_size: float = 8.0, seed: int = SEED
) -> sp.csr_matrix:
    """Baskets of Poisson(mean_size) draws from a Zipf(1) item popularity, duplicates merged."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1)
    sizes = np.maximum(1, rng.poisson(mean_size, n_baskets))
    rows = np.repeat(np.arange(n_baskets), sizes)
    columns = rng.choice(n_items, size=len(rows), p=popularity / popularity.sum())
    return _matrix(rows, columns, (n_baskets, n_items))


def _matrix(rows: np.ndarray, columns: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    matrix = sp.csr_matrix((np.ones(len(rows), dtype=bool), (rows, columns)), shape=shape)
    matrix.sum_duplicates()
    matrix.data[:] = True
    return matrix


def load(name: str, groceries_path: Path | None) -> sp.csr_matrix:
    if name == "a":
        assert groceries_path is not None, "(a) needs --groceries"
        return groceries(groceries_path)[0]
    return zipf_baskets()


# -- one contender in its own process --------------------------------------------------


def run_worker(contender: str, data: str, groceries_path: Path | None, out: Path) -> None:
    """Mine one data set with one contender; write timings and itemsets to `out`."""
    matrix = load(data, groceries_path)
    prepared = _prepare(contender, matrix)
    input_peak = _peak_mb()

    started = time.perf_counter()
    itemsets = _mine(contender, prepared)
    seconds = time.perf_counter() - started

    result = {"seconds": seconds, "peak_mb": _peak_mb(), "input_peak_mb": input_peak}
    result["itemsets"] = itemsets
    out.write_bytes(pickle.dumps(result))


def _prepare(contender: str, matrix: sp.csr_matrix) -> sp.csr_matrix | tuple[pd.DataFrame, int]:
    if contender.startswith("ours"):
        return matrix
    counts = np.bincount(matrix.indices, minlength=matrix.shape[1])
    needed = np.flatnonzero(counts / matrix.shape[0] >= SUPPORT)
    frame = pd.DataFrame(matrix[:, needed].toarray(), columns=needed)
    return frame, matrix.shape[0]


def _mine(contender: str, prepared: sp.csr_matrix | tuple) -> dict[frozenset, int]:
    """Itemsets (as frozensets of matrix columns) with their basket counts."""
    if contender.startswith("ours"):
        from tools.itemsets import mine

        found = mine(prepared, min_support=SUPPORT, algo=contender.split("-")[1])
        frame = found.to_frame()
        n_baskets = found.n_baskets
    else:
        from mlxtend.frequent_patterns import apriori, fpgrowth

        data, n_baskets = prepared
        miner = fpgrowth if contender == "mlxtend-fpgrowth" else apriori
        options = {"low_memory": True} if contender == "mlxtend-apriori" else {}
        frame = miner(data, min_support=SUPPORT, use_colnames=True, **options)
    counts = np.rint(frame["support"].to_numpy() * n_baskets).astype(int)
    return dict(zip(frame["itemsets"], counts.tolist(), strict=True))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def contend(contender: str, data: str, groceries_path: Path | None, limit_s: float) -> dict | str:
    """Run one contender in a fresh interpreter; its result, or why there is none."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.pickle"
        command = [sys.executable, __file__, "--worker", contender, "--data", data]
        command += ["--out", str(out)]
        if groceries_path is not None:
            command += ["--groceries", str(groceries_path)]
        try:
            subprocess.run(command, check=True, timeout=limit_s, cwd=ROOT)
        except subprocess.TimeoutExpired:
            return f"stopped after the {limit_s:.0f} s limit"
        except subprocess.CalledProcessError as exc:
            return f"failed (exit status {exc.returncode})"
        return pickle.loads(out.read_bytes())


# -- the comparison --------------------------------------------------------------------


def compare(data: str, groceries_path: Path | None, limit_s: float) -> dict:
    title = {"a": "(a) Groceries", "b": "(b) 500,000 Zipf baskets"}[data]
    print(f"\n{title}, min_support={SUPPORT}  [anchors: {ANCHORS[data]}]")
    results: dict[str, dict | str] = {}
    for contender in ("ours-fpgrowth", "ours-apriori", "mlxtend-fpgrowth", "mlxtend-apriori"):
        results[contender] = contend(contender, data, groceries_path, limit_s)
        _print_result(contender, results[contender], results.get("ours-fpgrowth"))
    return results


def _print_result(contender: str, result: dict | str, reference: dict | str | None) -> None:
    if isinstance(result, str):
        print(f"  {contender:17} {result}")
        return
    same = "reference"
    if contender != "ours-fpgrowth":
        same = _agreement(result["itemsets"], reference)
    print(
        f"  {contender:17} {result['seconds']:8.2f} s   peak {result['peak_mb']:6.0f} MB "
        f"(input {result['input_peak_mb']:.0f} MB)   {len(result['itemsets']):,} itemsets   "
        f"{same}"
    )


def _agreement(itemsets: dict, result: dict | str | None) -> str:
    if not isinstance(result, dict):
        return "no reference to compare"
    reference = result["itemsets"]
    if itemsets == reference:
        return "identical itemsets and supports"
    missing, extra = (
        len(reference.keys() - itemsets.keys()),
        len(itemsets.keys() - reference.keys()),
    )
    differ = sum(
        1 for key in reference.keys() & itemsets.keys() if reference[key] != itemsets[key]
    )
    return f"DIFFERENT: {missing} missing, {extra} extra, {differ} supports differ"


def verdict(results: dict) -> str:
    ours, theirs = results["ours-fpgrowth"], results["mlxtend-fpgrowth"]
    if isinstance(ours, str) or isinstance(theirs, str):
        return "target: not judged (a contender did not finish)"
    speedup = theirs["seconds"] / ours["seconds"]
    met = speedup >= 10 and ours["peak_mb"] < 1024 and ours["itemsets"] == theirs["itemsets"]
    return (
        f"  ours vs mlxtend fpgrowth on (b): {speedup:.1f}x faster, peak {ours['peak_mb']:.0f} MB"
        f" vs {theirs['peak_mb']:.0f} MB; {TARGETS}: {'met' if met else 'MISSED'}"
    )


def groceries_facts(path: Path) -> bool:
    """Whole milk's support and the published rule count at 0.005 / 0.5."""
    from tools.itemsets import association_rules, mine

    matrix, names = groceries(path)
    milk = int(matrix[:, names.index("whole milk")].sum())
    rules = association_rules(mine(matrix, min_support=0.005), min_confidence=0.5)
    one_right = int((rules["consequents"].map(len) == 1).sum())
    print("\nGroceries facts")
    print(
        f"  whole milk in {milk:,} of {matrix.shape[0]:,} baskets, support "
        f"{milk / matrix.shape[0]:.4f} (published: {WHOLE_MILK_BASKETS:,}, 0.2555)"
    )
    print(
        f"  rules at min_support 0.005, min_confidence 0.5 with one item on the right: "
        f"{one_right} (published: {RULES_AT_0_005_CONF_0_5})"
    )
    return milk == WHOLE_MILK_BASKETS and one_right == RULES_AT_0_005_CONF_0_5


# -- /rules end to end -----------------------------------------------------------------


def retail_lines(
    n_orders: int = 20_000, n_products: int = 4_000, seed: int = SEED
) -> pd.DataFrame:
    """Order lines shaped like the UCI Online Retail export, with planted bundles.

    About 20 lines an order (geometric), Zipf(0.6) product popularity (the top product in
    about a fifth of orders), 4,300 customers over a year, 2 % of lines returned, and 60
    bundles of 2-3 products bought together.
    """
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_products + 1) ** 0.6
    sizes = rng.geometric(1 / 20, n_orders)
    order_of_line = np.repeat(np.arange(n_orders), sizes)
    products = rng.choice(n_products, size=len(order_of_line), p=popularity / popularity.sum())

    # Bundles: whoever buys the first product of a bundle often takes the rest too.
    bundles = rng.choice(np.arange(50, 1500), size=(60, 3), replace=False)
    extra_orders, extra_products = [], []
    for bundle in bundles:
        buyers = np.unique(order_of_line[products == bundle[0]])
        for follower, share in zip(bundle[1:], (0.6, 0.35), strict=True):
            chosen = buyers[rng.random(len(buyers)) < share]
            extra_orders.append(chosen)
            extra_products.append(np.full(len(chosen), follower))
    order_of_line = np.concatenate([order_of_line, *extra_orders])
    products = np.concatenate([products, *extra_products])

    days = rng.integers(0, 365, n_orders)
    returned = rng.random(len(products)) < 0.02
    invoice = np.char.add(np.where(returned, "C", ""), (536365 + order_of_line).astype(str))
    timestamp = pd.Timestamp("2024-01-01 09:00") + pd.to_timedelta(days[order_of_line], "D")
    return pd.DataFrame(
        {
            "InvoiceNo": invoice,
            "StockCode": (10000 + products).astype(str),
            "Description": np.char.add("PRODUCT ", products.astype(str)),
            "Quantity": np.where(returned, -1, rng.integers(1, 13, len(products))),
            "InvoiceDate": timestamp.strftime("%Y-%m-%d %H:%M:%S"),
            "UnitPrice": np.round(rng.gamma(2.0, 2.0, len(products)), 2),
            "CustomerID": (12346 + rng.integers(0, 4300, n_orders)[order_of_line]).astype(str),
        }
    )


RETAIL_ROLES = {
    "order_id": "InvoiceNo",
    "product_code": "StockCode",
    "product": "Description",
    "quantity": "Quantity",
    "timestamp": "InvoiceDate",
    "unit_price": "UnitPrice",
    "customer_id": "CustomerID",
}


def run_e2e_worker(data_dir: Path, out: Path) -> None:
    """Time `/rules` (default parameters) on the stored shop, in this fresh process."""
    from storage.datasets import get_dataset
    from storage.settings import Settings
    from storage.store import open_store
    from tools.rules import RulesParams, RulesTool

    engine = open_store(Settings(_env_file=None, data_dir=data_dir))
    dataset = get_dataset(engine, chat_id=1)
    started = time.perf_counter()
    report = RulesTool(memory_budget_mb=1024).run(dataset, RulesParams())
    seconds = time.perf_counter() - started
    facts = {key: value for key, value in report.facts.items() if key != "top_rule"}
    out.write_text(json.dumps({"seconds": seconds, "peak_mb": _peak_mb(), "facts": facts}))


def end_to_end() -> bool:
    from storage.settings import Settings
    from storage.store import open_store, store_frame

    lines = retail_lines()
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder) / "data"
        engine = open_store(Settings(_env_file=None, data_dir=data_dir))
        store_frame(engine, lines, chat_id=1, name="retail", roles=RETAIL_ROLES, kind="orders")
        engine.dispose()
        out = Path(folder) / "e2e.json"
        command = [sys.executable, __file__, "--e2e-worker", str(data_dir), "--out", str(out)]
        subprocess.run(command, check=True, cwd=ROOT)
        result = json.loads(out.read_text())
    facts = result["facts"]
    met = result["seconds"] < E2E_TARGET_S
    print(
        f"\n/rules end to end on {len(lines):,} order lines (20,000 orders, 4,000 products)\n"
        f"  {result['seconds']:.2f} s, peak {result['peak_mb']:.0f} MB; min_support "
        f"{facts['min_support']} (auto), {facts['rules']} rules, {facts['baskets']:,} orders"
        f"\n  target: < {E2E_TARGET_S:.0f} s: {'met' if met else 'MISSED'}"
    )
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--groceries",
        type=Path,
        help="the Groceries data set as CSV (basket_id,item,...); without it (a) is skipped",
    )
    parser.add_argument("--limit-s", type=float, default=300, help="time limit per contender")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--e2e-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args.worker, args.data, args.groceries, args.out)
        return 0
    if args.e2e_worker:
        run_e2e_worker(args.e2e_worker, args.out)
        return 0

    have_groceries = args.groceries is not None and args.groceries.is_file()
    if have_groceries:
        compare("a", args.groceries, args.limit_s)
    else:
        print(
            "(a) Groceries skipped: pass --groceries PATH, a CSV of the arules Groceries data "
            "with one line per basket item (basket_id,item).\n"
        )
    results_b = compare("b", args.groceries, args.limit_s)
    print(verdict(results_b))
    facts_ok = groceries_facts(args.groceries) if have_groceries else True
    e2e_ok = end_to_end()
    return 0 if facts_ok and e2e_ok else 1


if __name__ == "__main__":
    sys.exit(main())
