"""Ingestion speed and memory against named anchors, on one generated order file.

    python benchmarks/ingest.py [--rows 1000000] [--seed 7] [--keep DIR]

Writes a demo export (1,000,000 lines is about 90 MB), then loads it three ways, each in a
fresh process and a fresh SQLite file, and prints wall time and peak memory (the child's
peak resident set size, from `wait4`):

- marketbot: `ingest_path`, with all cleaning, role detection, indexes and the catalog
  (its SQLite writer is a child process of its own, whose peak is reported beside);
- sqlite3 `.import`: the command-line shell loading the raw text, no cleaning, no indexes;
- pandas: `read_csv` of the whole file, then `DataFrame.to_sql`.

Targets: marketbot within 2x the `.import` time, and under 400 MB peak memory (the
ingesting process and its writer process added up, a bound on what they hold together).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TIME_TARGET = 2.0
MEMORY_TARGET_MB = 400
#: How often the PSS is sampled. Reading it walks the page tables and holds the memory
#: map lock, which slows the process measured: sampling every 20 ms cost it seconds.
PSS_EVERY_S = 0.25

OURS = """
import logging, sys, time
from storage.ingest import ingest_path
from storage.settings import Settings
from storage.store import open_store

settings = Settings(_env_file=None, data_dir=sys.argv[2], max_upload_mb=4096, max_rows=50_000_000)
engine = open_store(settings)
writer_peaks = []
handler = logging.Handler()
handler.emit = lambda record: writer_peaks.append(record.args[0])
logging.getLogger("storage.bulk").addHandler(handler)
logging.getLogger("storage.bulk").setLevel(logging.DEBUG)

started = time.perf_counter()
summary = ingest_path(engine, sys.argv[1], chat_id=1, name="bench", settings=settings)
print(time.perf_counter() - started)
print(max(writer_peaks, default=0.0))
print(summary.rows_kept, file=sys.stderr)
"""

GENERATE = """
import sys
from storage.demo import write_demo_csv

write_demo_csv(sys.argv[1], rows=int(sys.argv[2]), seed=int(sys.argv[3]))
"""

PANDAS = """
import sqlite3, sys, time
import pandas as pd

started = time.perf_counter()
frame = pd.read_csv(sys.argv[1])
connection = sqlite3.connect(sys.argv[2] + "/pandas.db")
frame.to_sql("orders", connection, index=False)
connection.commit()
print(time.perf_counter() - started)
"""


@dataclass
class Result:
    name: str
    seconds: float | None
    peak_mb: float | None
    note: str = ""
    #: A second process's peak, counted with `peak_mb` for the memory target.
    helper_mb: float = 0.0
    #: Both processes' peak proportional set size, sampled while ours runs.
    pss_mb: float = 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="keep the generated file and databases here")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="marketbot-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        orders = _generate(work, args.rows, args.seed)
        results = [_ours(orders, work), _sqlite_import(orders, work), _pandas(orders, work)]
        _report(results, orders, args.rows)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _generate(work: Path, rows: int, seed: int) -> Path:
    # In a child process: a child's peak memory starts from its parent's at fork, so the
    # parent stays small for the measurements that follow.
    path = work / "orders.csv"
    took, _, _, _, code = _run([sys.executable, "-c", GENERATE, str(path), str(rows), str(seed)])
    if code:
        raise SystemExit("could not generate the order file")
    size = path.stat().st_size / 1024 / 1024
    print(f"generated {rows:,} lines ({size:,.0f} MB) in {took:.1f}s")
    return path


def _run(command: list[str]) -> tuple[float, float, float, str, int]:
    """Run a child; return its wall time, peak RSS and PSS in MB, stdout and exit status.

    The PSS (proportional set size) peak is sampled from here, for the child and its own
    children together: pages they share count once, split between them.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO
    )
    pss_peak = [0.0]
    sampler = threading.Thread(target=_sample_pss, args=(child, pss_peak), daemon=True)
    sampler.start()
    out = child.stdout.read().decode() if child.stdout else ""
    err = child.stderr.read().decode() if child.stderr else ""
    # wait4 reports this child's own peak memory (RUSAGE_CHILDREN would keep the maximum
    # over every child so far).
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    sampler.join()
    if child.returncode:
        print(err, file=sys.stderr)
    return wall, usage.ru_maxrss / 1024, pss_peak[0], out, child.returncode


def _sample_pss(child: subprocess.Popen, peak: list[float]) -> None:
    while child.returncode is None and Path(f"/proc/{child.pid}/smaps_rollup").exists():
        family = [child.pid, *_children(child.pid)]
        peak[0] = max(peak[0], sum(_pss_mb(pid) for pid in family))
        time.sleep(PSS_EVERY_S)
        if _exited(child.pid):
            return


def _exited(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _pss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            return next(int(line.split()[1]) for line in rollup if line.startswith("Pss:")) / 1024
    except (OSError, StopIteration):
        return 0.0


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            return [int(word) for word in listing.read().split()]
    except OSError:
        return []


def _fresh(work: Path, name: str) -> Path:
    folder = work / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return folder


def _ours(orders: Path, work: Path) -> Result:
    data = _fresh(work, "marketbot")
    wall, peak, pss, out, code = _run([sys.executable, "-c", OURS, str(orders), str(data)])
    if code:
        return Result("marketbot ingest_path", None, peak, "failed")
    seconds, writer = (float(word) for word in out.split()[:2])
    note = f"(+ writer process {writer:.0f} MB; whole run with Python start-up: {wall:.2f}s)"
    return Result("marketbot ingest_path", seconds, peak, note, helper_mb=writer, pss_mb=pss)


def _sqlite_import(orders: Path, work: Path) -> Result:
    binary = shutil.which("sqlite3")
    if binary is None:
        return Result(
            "sqlite3 .import",
            None,
            None,
            "sqlite3 command not found: install it (apt-get install sqlite3) for this anchor",
        )
    database = _fresh(work, "sqlite") / "import.db"
    wall, peak, _, _, code = _run(
        [binary, str(database), "-cmd", ".mode csv", f".import {orders} t"]
    )
    return Result("sqlite3 .import", None if code else wall, peak, "failed" if code else "")


def _pandas(orders: Path, work: Path) -> Result:
    data = _fresh(work, "pandas")
    _, peak, _, out, code = _run([sys.executable, "-c", PANDAS, str(orders), str(data)])
    if code:
        return Result("pandas read_csv + to_sql", None, peak, "failed")
    return Result("pandas read_csv + to_sql", float(out.split()[0]), peak)


def _report(results: list[Result], orders: Path, rows: int) -> None:
    anchor = next((r.seconds for r in results if r.name == "sqlite3 .import"), None)
    print(f"\n{'contender':<28}{'wall s':>9}{'peak MB':>10}{'x .import':>11}")
    for result in results:
        seconds = f"{result.seconds:.2f}" if result.seconds is not None else "-"
        peak = f"{result.peak_mb:.0f}" if result.peak_mb is not None else "-"
        ratio = f"{result.seconds / anchor:.2f}" if anchor and result.seconds else "-"
        print(f"{result.name:<28}{seconds:>9}{peak:>10}{ratio:>11}  {result.note}")
    ours = results[0]
    if ours.seconds is not None and ours.peak_mb is not None:
        ratio = f"{ours.seconds / anchor:.2f}x" if anchor else "no anchor"
        speed = "met" if anchor and ours.seconds <= TIME_TARGET * anchor else "missed"
        total_mb = ours.peak_mb + ours.helper_mb
        memory = "met" if ours.pss_mb < MEMORY_TARGET_MB else "missed"
        print(
            f"\ntargets for {rows:,} lines of {orders.name}:\n"
            f"  time <= {TIME_TARGET:.0f}x .import: {ratio}, {speed}\n"
            f"  peak memory < {MEMORY_TARGET_MB} MB, both processes together: "
            f"{ours.pss_mb:.0f} MB proportional set size, {memory} "
            f"(their two peak RSS figures added up: {total_mb:.0f} MB, which counts the "
            "libraries they share twice)"
        )
    print(
        "marketbot and pandas times run from the first byte read, after imports; the "
        "sqlite3 time is its whole process."
    )


if __name__ == "__main__":
    raise SystemExit(main())
