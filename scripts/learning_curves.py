"""Print PublicTest learning curves of recorded runs and the first epoch that reaches a target.

``python scripts/learning_curves.py [--target 0.617] RUN_DIR [RUN_DIR ...]``

Each run folder holds the ``history.csv`` written by ``fer.train`` (``val_accuracy`` is
PublicTest, computed during training) and its ``hparams.json``. Used for the paper
reproduction: the paper reports 61.7% on PublicTest after 10 epochs at batch 512.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def curve(run: Path) -> list[float]:
    """PublicTest accuracy after each epoch of a run."""
    with open(run / "history.csv", newline="") as handle:
        return [float(row["val_accuracy"]) for row in csv.DictReader(handle)]


def first_reaching(values: list[float], target: float) -> int | None:
    """1-based epoch at which a curve first reaches the target, or None."""
    return next((epoch for epoch, value in enumerate(values, start=1) if value >= target), None)


def describe(run: Path) -> str:
    """A short description of a run's settings from its hparams.json."""
    path = run / "hparams.json"
    if not path.is_file():
        return ""
    h = json.loads(path.read_text())
    smoothing = f", label smoothing {h['label_smoothing']:g}" if h.get("label_smoothing") else ""
    return (f"{h['arch']}, {h['optimizer']} {h['lr']:g} {h['schedule']}{smoothing}, batch {h['batch_size']}, "
            f"{h['epochs']} epochs planned")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--target", type=float, default=0.617)
    args = parser.parse_args(argv)
    for run in args.runs:
        if not (run / "history.csv").is_file():
            print(f"{run}: no history.csv")
            continue
        values = curve(run)
        reached = first_reaching(values, args.target)
        print(f"{run}  ({describe(run)})")
        print("  PublicTest by epoch: " + " ".join(f"{i}:{v * 100:.1f}" for i, v in enumerate(values, start=1)))
        best_epoch = values.index(max(values)) + 1
        print(f"  final {values[-1] * 100:.2f}%, best {max(values) * 100:.2f}% (epoch {best_epoch}), "
              + (f"first reaches {args.target * 100:.1f}% at epoch {reached}" if reached
                 else f"never reaches {args.target * 100:.1f}%"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
