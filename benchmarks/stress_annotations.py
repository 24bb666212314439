"""Stress test of the SQLite annotation store: concurrent writers and a writer killed mid-way.

Run ``python benchmarks/stress_annotations.py [--processes 8] [--writes 500]``; it prints the
figures quoted in the closing note of issue 6 (rows, errors, seconds, integrity) and exits 1 if
any check fails. Each run uses a fresh database in a temporary folder.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # Run from a checkout, no install.

from fer.annotations import AnnotationStore, make_annotation  # noqa: E402
from fer.labels import EMOTIONS  # noqa: E402

BATCH = 10


def _writer(path: str, worker: int, writes: int, barrier, results) -> None:
    # Each process opens the store itself, so the race to create the schema is part of the test.
    store = AnnotationStore(path)
    barrier.wait()
    errors = []
    start = time.perf_counter()
    for i in range(writes):
        row = (worker * writes + i) % 35_887
        try:
            store.add(row, "relabel", EMOTIONS[i % len(EMOTIONS)], f"w{worker} #{i}", annotator=f"worker-{worker}")
        except (sqlite3.Error, ValueError) as err:  # Counted and reported, never hidden.
            errors.append(repr(err))
    results.put((worker, time.perf_counter() - start, errors))


def _endless_writer(path: str) -> None:
    store = AnnotationStore(path)
    i = 0
    while True:
        batch = [make_annotation((i + k) % 35_887, "ambiguous", note="batch", annotator="doomed") for k in range(BATCH)]
        store.add_many(batch)
        i += BATCH


def concurrent_writers(path: Path, processes: int, writes: int) -> dict[str, object]:
    """Run ``processes`` writers, each appending ``writes`` annotations at once; return the figures."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(processes + 1), ctx.Queue()
    workers = [ctx.Process(target=_writer, args=(str(path), w, writes, barrier, results)) for w in range(processes)]
    for p in workers:
        p.start()
    barrier.wait()  # Start the clock once every writer is up (spawn start-up is not the store's cost).
    start = time.perf_counter()
    reports = [results.get(timeout=120) for _ in workers]
    seconds = time.perf_counter() - start
    for p in workers:
        p.join(timeout=30)
    store = AnnotationStore(path)
    errors = [e for _, _, errs in reports for e in errs]
    return {
        "rows": store.count(),
        "expected": processes * writes,
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "seconds": round(seconds, 2),
        "writes_per_second": round(processes * writes / seconds),
        "exit_codes": sorted({p.exitcode for p in workers}),
        "integrity": store.integrity_check(),
    }


def killed_writer(path: Path, min_rows: int = 500) -> dict[str, object]:
    """SIGKILL a writer mid-stream of batched transactions; check the file and its atomicity."""
    ctx = mp.get_context("spawn")
    AnnotationStore(path)
    writer = ctx.Process(target=_endless_writer, args=(str(path),))
    writer.start()
    store = AnnotationStore(path)
    deadline = time.monotonic() + 60
    while store.count() < min_rows and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(writer.pid, signal.SIGKILL)
    writer.join(timeout=30)
    rows = store.count()
    ids = store.history()["id"].to_numpy()
    store.add(0, "confirm", "happy", annotator="survivor")  # Still writable: no stale lock left.
    return {
        "exit_code": writer.exitcode,
        "rows": rows,
        "whole_batches": rows % BATCH == 0,
        "ids_contiguous": bool(len(ids) == 0 or (ids[0] == 1 and ids[-1] == len(ids))),
        "integrity": store.integrity_check(),
        "writable_after": store.count() == rows + 1,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Print the stress figures; return 1 if a check fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--writes", type=int, default=500)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        concurrent = concurrent_writers(Path(folder) / "stress.sqlite3", args.processes, args.writes)
        killed = killed_writer(Path(folder) / "killed.sqlite3")
    print(f"concurrent writers ({args.processes} processes x {args.writes} writes, spawn):")
    for key, value in concurrent.items():
        print(f"  {key}: {value}")
    print("writer killed with SIGKILL mid-way:")
    for key, value in killed.items():
        print(f"  {key}: {value}")
    ok = (
        concurrent["rows"] == concurrent["expected"] and concurrent["errors"] == 0
        and concurrent["integrity"] == "ok" and concurrent["exit_codes"] == [0]
        and killed["exit_code"] == -signal.SIGKILL and killed["integrity"] == "ok"
        and killed["whole_batches"] and killed["ids_contiguous"] and killed["writable_after"]
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
