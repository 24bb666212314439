"""Temperature scaling: how far a model's probabilities can be trusted, and one number that fixes it.

A network trained with cross-entropy tends to be overconfident: among faces it calls 90% happy,
fewer than 90% are. Dividing the log-probabilities by a temperature T > 1 softens every row
without changing any argmax (so accuracy stays), and the T that minimises the NLL on the
validation split (PublicTest) usually removes most of the gap on the test split too.

``python -m fer.calibration --model models/fer_best.h5 [--tta] [--bins 15] [--update-card] [--json]``
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer.distill import soften

FIT_SPLIT = "PublicTest"
_EPS = 1e-12  # the same floor as soften's, so NLL stays finite on rounded-to-zero CSV values


def _valid(probabilities: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows with a label: a negative label marks an excluded face (e.g. FER+ not-a-face)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64)
    if probabilities.ndim != 2 or len(probabilities) != len(labels):
        raise ValueError(f"probabilities of shape {probabilities.shape} for {len(labels)} labels")
    keep = labels >= 0
    return probabilities[keep], labels[keep]


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Returns ``softmax(log(p) / T)`` row-wise: T > 1 softens, T < 1 sharpens, argmax is kept.

    Raises:
        ValueError: for a temperature that is not a positive finite number.
    """
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a positive number, not {temperature}")
    return soften(np.asarray(probabilities, dtype=np.float64), float(temperature))


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean ``-log p(true label)`` over the faces with a label (NaN without any)."""
    p, y = _valid(probabilities, labels)
    return float(-np.log(np.clip(p[np.arange(len(y)), y], _EPS, 1.0)).mean()) if len(y) else float("nan")


def brier_score(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean over faces of the summed squared error against the one-hot label (NaN without faces)."""
    p, y = _valid(probabilities, labels)
    return float(((p - np.eye(p.shape[1])[y]) ** 2).sum(axis=1).mean()) if len(y) else float("nan")


def _rounded(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 6)


@dataclass(frozen=True)
class Reliability:
    """A reliability diagram: faces binned by their top probability.

    Attributes:
        edges: (bins + 1,) equal-width bin edges on [0, 1]; a bin holds [lo, hi), the last also 1.
        counts: (bins,) faces per bin.
        confidence: (bins,) mean top probability per bin, NaN for an empty bin.
        accuracy: (bins,) share of faces whose argmax is the label, NaN for an empty bin.
    """

    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def ece(self) -> float:
        """Expected calibration error: the count-weighted mean |accuracy - confidence| (NaN without faces)."""
        filled = self.counts > 0
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float((self.counts[filled] * gaps).sum() / self.counts.sum()) if filled.any() else float("nan")

    @property
    def mce(self) -> float:
        """Maximum calibration error: the largest |accuracy - confidence| of a non-empty bin."""
        filled = self.counts > 0
        return float(np.abs(self.accuracy[filled] - self.confidence[filled]).max()) if filled.any() else float("nan")

    def as_dict(self) -> dict:
        """JSON-ready: floats rounded to 6 digits, NaN as None."""
        return {"edges": [_rounded(v) for v in self.edges], "counts": [int(c) for c in self.counts],
                "confidence": [_rounded(v) for v in self.confidence],
                "accuracy": [_rounded(v) for v in self.accuracy], "ece": _rounded(self.ece), "mce": _rounded(self.mce)}


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> Reliability:
    """Bins the faces with a label by top probability into ``bins`` equal-width bins."""
    if bins < 1:
        raise ValueError(f"bins must be at least 1, not {bins}")
    p, y = _valid(probabilities, labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    top = p.max(axis=1)
    index = np.clip(np.searchsorted(edges, top, side="right") - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    right = p.argmax(axis=1) == y
    with np.errstate(invalid="ignore", divide="ignore"):  # empty bins become NaN on purpose
        confidence = np.bincount(index, weights=top, minlength=bins) / counts
        accuracy = np.bincount(index, weights=right.astype(np.float64), minlength=bins) / counts
    return Reliability(edges, counts, confidence, accuracy)


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature in ``bounds`` that minimises the mean NLL of the faces with a label.

    The NLL is convex in 1/T, hence unimodal in log T, so a golden-section search on log T finds
    the minimum without scipy, to about 1e-7 relative.

    Raises:
        ValueError: for bad bounds or without a labelled face.
    """
    low, high = bounds
    if not 0 < low < high:
        raise ValueError(f"temperature bounds must satisfy 0 < low < high, not {bounds}")
    p, y = _valid(probabilities, labels)
    if not len(y):
        raise ValueError("no labelled faces to fit a temperature on")

    def nll(log_t: float) -> float:
        return negative_log_likelihood(apply_temperature(p, np.exp(log_t)), y)

    a, b = np.log(low), np.log(high)
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(c), nll(d)
    while b - a > 1e-7:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(d)
    return float(np.exp((a + b) / 2.0))


def _scores(probabilities: np.ndarray, labels: np.ndarray, bins: int) -> tuple[dict, Reliability]:
    diagram = reliability(probabilities, labels, bins)
    scores = {"ece": diagram.ece, "mce": diagram.mce, "nll": negative_log_likelihood(probabilities, labels),
              "brier": brier_score(probabilities, labels)}
    return {k: _rounded(v) for k, v in scores.items()}, diagram


def calibration_summary(probabilities: np.ndarray, labels: np.ndarray, temperature: float, bins: int = 15) -> dict:
    """ECE, MCE, NLL and Brier score before and after ``temperature``, with both diagrams (JSON-ready)."""
    before, diagram_before = _scores(probabilities, labels, bins)
    after, diagram_after = _scores(apply_temperature(probabilities, temperature), labels, bins)
    return {"n": int(diagram_before.counts.sum()), "before": before, "after": after,
            "reliability_before": diagram_before.as_dict(), "reliability_after": diagram_after.as_dict()}


def _card_key(tta: bool) -> str:
    return "calibration_tta" if tta else "calibration"


def has_card_temperature(card: dict, tta: bool) -> bool:
    """Whether a model card holds a temperature for plain or flip-TTA probabilities (without one,
    :func:`card_temperature` gives 1.0: the network's own probabilities).
    """
    return bool((card.get(_card_key(tta)) or {}).get("temperature"))


def card_temperature(card: dict, tta: bool) -> float:
    """The temperature a model card stores for plain or flip-TTA probabilities; 1.0 (none) when absent.

    Raises:
        ValueError: for a stored temperature that is not a positive number (a hand-edited card).
    """
    key = _card_key(tta)
    entry = card.get(key) or {}
    try:
        temperature = float(entry.get("temperature") or 1.0)
    except (TypeError, ValueError):
        temperature = float("nan")
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"the card's {key} temperature must be a positive number, not {entry.get('temperature')!r}; "
                         "refit it with `python -m fer.calibration --update-card`")
    return temperature


def calibrate_table(table, temperature: float):
    """A predictions table (``fer.evaluate``'s CSV) with its ``p_*`` columns softened by ``temperature``.

    The ``pred`` column is kept: the temperature never changes a row's argmax.
    """
    from fer.labels import PROB_COLUMNS

    if temperature == 1.0:
        return table
    out = table.copy()
    out[list(PROB_COLUMNS)] = apply_temperature(table[list(PROB_COLUMNS)].to_numpy(), temperature).round(6)
    return out


def ferplus_majority(rows: np.ndarray) -> np.ndarray:
    """The FER+ crowd's majority label of each FER2013 row (-1 without one, which every score skips).

    Raises:
        FileNotFoundError: when the embedded FER+ votes are missing.
    """
    from fer.ferplus import load_ferplus_votes, majority_label

    return majority_label(load_ferplus_votes().votes)[np.asarray(rows, dtype=np.int64)]


def format_table(entry: dict) -> str:
    """Renders a card entry as one line per split: n and each score before -> after."""
    names = ("ece", "mce", "nll", "brier")
    lines = [f"{'split':<12}{'n':>6}  " + "  ".join(f"{name.upper():<18}" for name in names).rstrip()]
    for split, summary in entry["splits"].items():
        cells = [f"{summary['before'][k]:.4f} -> {summary['after'][k]:.4f}" for k in names]
        lines.append(f"{split:<12}{summary['n']:>6}  " + "  ".join(f"{cell:<18}" for cell in cells).rstrip())
    lines.append(f"temperature {entry['temperature']:.4f}, fitted on {entry['fitted_on']}, {entry['bins']} bins")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    from fer.evaluate import predictions_path
    from fer.explorer import validate_predictions
    from fer.labels import PROB_COLUMNS
    from fer.lite import project_relative
    from fer.metadata import read_metadata, write_metadata

    parser = argparse.ArgumentParser(prog="python -m fer.calibration", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, help="model .h5 (only its card and predictions are read)")
    parser.add_argument("--tta", action="store_true", help="calibrate the flip-TTA predictions")
    parser.add_argument("--bins", type=int, default=15, help="reliability-diagram bins")
    parser.add_argument("--update-card", action="store_true", help="write the result into the model's JSON card")
    parser.add_argument("--json", action="store_true", help="print the card entry as JSON instead of a table")
    parser.add_argument("--reference", choices=("fer2013", "ferplus"), default="fer2013",
                        help="labels to calibrate against: FER2013's, or the FER+ crowd's majority (for models "
                             "trained on FER+ votes; faces without an emotion majority are left out)")
    args = parser.parse_args(argv)
    if args.bins < 1:
        parser.error(f"--bins must be at least 1, not {args.bins}")
    table_path = predictions_path(args.model, tta=args.tta)
    if not table_path.is_file():
        flag = " --tta" if args.tta else ""
        print(f"error: predictions not found: {table_path} (run python -m fer.evaluate --model {args.model}{flag})",
              file=sys.stderr)
        return 2
    try:
        import pandas as pd

        card = read_metadata(args.model) if args.update_card else None
        table = validate_predictions(pd.read_csv(table_path))
        if args.reference == "ferplus":
            table = table.assign(true=ferplus_majority(table["row"].to_numpy()))
        fit = table[table["split"] == FIT_SPLIT]
        if fit.empty:
            raise ValueError(f"{table_path} has no {FIT_SPLIT} faces to fit on")
        # Rounded first, so the card's figures are those of the temperature it stores.
        temperature = round(fit_temperature(fit[list(PROB_COLUMNS)].to_numpy(), fit["true"].to_numpy()), 4)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    command = "python -m fer.calibration --model " + shlex.quote(project_relative(args.model))
    command += (" --tta" if args.tta else "") + f" --bins {args.bins}"
    command += (" --reference ferplus" if args.reference == "ferplus" else "") + " --update-card"
    splits = {str(split): calibration_summary(part[list(PROB_COLUMNS)].to_numpy(), part["true"].to_numpy(),
                                              temperature, args.bins)
              for split, part in table.groupby("split", sort=False)}
    entry = {"temperature": temperature, "fitted_on": FIT_SPLIT, "reference": args.reference, "bins": args.bins,
             "command": command,
             "splits": splits}
    if card is not None:
        card[_card_key(args.tta)] = entry
        write_metadata(args.model, card)
    print(json.dumps(entry) if args.json else format_table(entry))
    return 0


if __name__ == "__main__":
    sys.exit(main())
