"""Average released models: ``python -m fer.ensemble --model A.h5 --model B.h5 [--tta] [--json]``.

Each member applies its own pre-processing (from its metadata) and the ensemble averages the
7 probabilities per face. Prints the same report as :mod:`fer.evaluate`; the cost per face is
measured by ``python benchmarks/bench_classify.py --ensemble A.h5 B.h5``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from fer.evaluate import Evaluation, evaluate_model, print_evaluation, summarise
from fer.labels import EVAL_SPLITS, PROB_COLUMNS


def average_predictions(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Averages per-image prediction tables of several models on the same faces.

    Raises:
        ValueError: when the tables do not list the same faces in the same order.
    """
    if not frames:
        raise ValueError("an ensemble needs at least one model")
    first = frames[0]
    for frame in frames[1:]:
        if not (frame[["row", "split", "true"]].to_numpy() == first[["row", "split", "true"]].to_numpy()).all():
            raise ValueError("ensemble members were evaluated on different faces")
    probs = np.mean([frame[list(PROB_COLUMNS)].to_numpy(dtype=np.float64) for frame in frames], axis=0)
    out = first[["row", "split", "true"]].copy()
    out["pred"] = probs.argmax(axis=1)
    for j, column in enumerate(PROB_COLUMNS):
        out[column] = probs[:, j].round(6)
    return out


def evaluate_ensemble(model_paths: list[str | Path], data: str | None = None, tta: bool = False,
                      splits: tuple[str, ...] = EVAL_SPLITS) -> Evaluation:
    """Evaluates the probability average of several models on the evaluation splits."""
    members = [evaluate_model(path, data, tta=tta, splits=splits) for path in model_paths]
    # Every member read the same data, so one member's row check speaks for all.
    problem = next((member.rows_problem for member in members if not member.aligned), "")
    return summarise(average_predictions([member.predictions for member in members]), problem)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m fer.ensemble", description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="a member .h5 (repeat the option)")
    parser.add_argument("--data", default=None, help="FER2013 CSV or image folder (default: shared CSV, else embedded)")
    parser.add_argument("--tta", action="store_true", help="flip test-time augmentation in every member")
    parser.add_argument("--json", action="store_true", help="print metrics as one JSON object keyed by split")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    missing = [path for path in args.model if not Path(path).is_file()]
    if missing:
        print(f"error: model not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        evaluation = evaluate_ensemble(args.model, args.data, tta=args.tta)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not evaluation.aligned:
        print(f"note: {evaluation.rows_problem}; no FER+ or near-duplicate metrics", file=sys.stderr)
    if not args.json:
        print(f"ensemble of {len(args.model)}: {', '.join(Path(p).name for p in args.model)}"
              + (" (flip TTA)" if args.tta else ""))
    print_evaluation(evaluation, as_json=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
