"""Two models on the same test faces: where they agree, where one is right and the other wrong,
and whether the difference in accuracy is more than chance.

Two models scored on the same faces are paired data: what matters is how many faces one gets
right and the other wrong, not the two accuracies alone. McNemar's exact test asks whether those
two counts differ more than a fair coin would make them; with a few thousand faces a gap of a
few tenths of a point usually does not.

``python -m fer.compare A.predictions.csv B.predictions.csv [--split PrivateTest] [--faces no_twin]``
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fer.labels import EMOTIONS, EVAL_SPLITS

# The four groups of paired outcomes, in display order.
GROUPS: dict[str, str] = {
    "only_b": "B right, A wrong",
    "only_a": "A right, B wrong",
    "both_wrong": "both wrong",
    "both_right": "both right",
}


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: how likely a split of the discordant faces at least this
    uneven is if either model is equally likely to be the right one on each.

    Args:
        only_a: faces model A gets right and B wrong.
        only_b: faces B gets right and A wrong.
    """
    if only_a < 0 or only_b < 0:
        raise ValueError("counts must be non-negative")
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class Comparison:
    """Two models' predictions on the same faces of one split.

    Attributes:
        faces: one row per face: ``row``, ``true``, ``pred_a``, ``pred_b``, ``right_a``,
            ``right_b`` and ``group`` (a key of :data:`GROUPS`), plus the probability columns of
            both (``p_<emotion>_a`` / ``_b``).
    """

    faces: pd.DataFrame

    @property
    def n(self) -> int:
        return len(self.faces)

    def count(self, group: str) -> int:
        """Faces in one group of :data:`GROUPS`."""
        return int((self.faces["group"] == group).sum())

    @property
    def accuracy_a(self) -> float:
        return float(self.faces["right_a"].mean()) if self.n else 0.0

    @property
    def accuracy_b(self) -> float:
        return float(self.faces["right_b"].mean()) if self.n else 0.0

    @property
    def p_value(self) -> float:
        """McNemar's exact test of the accuracy difference."""
        return mcnemar_exact(self.count("only_a"), self.count("only_b"))

    def summary(self) -> str:
        """One line: both accuracies, the discordant counts and the p-value."""
        return (f"n={self.n}: A {self.accuracy_a:.2%}, B {self.accuracy_b:.2%} "
                f"(B - A {100 * (self.accuracy_b - self.accuracy_a):+.2f} points); "
                f"A only right on {self.count('only_a')}, B only on {self.count('only_b')}; "
                f"McNemar exact p = {self.p_value:.3g}")


def compare(a: pd.DataFrame, b: pd.DataFrame, split: str) -> Comparison:
    """Pairs two per-face predictions tables (``row``, ``split``, ``true``, ``pred``, ...) on one split.

    Raises:
        ValueError: if the split is missing from either, or the two disagree on which faces it
            has or on their labels.
    """
    parts = []
    for name, table in (("A", a), ("B", b)):
        part = table[table["split"] == split]
        if part.empty:
            raise ValueError(f"predictions {name} have no {split} faces")
        parts.append(part.set_index("row").sort_index())
    part_a, part_b = parts
    if not part_a.index.equals(part_b.index):
        raise ValueError(f"the two predictions cover different {split} faces ({len(part_a)} and {len(part_b)})")
    if not (part_a["true"] == part_b["true"]).all():
        raise ValueError(f"the two predictions disagree on the labels of some {split} faces")
    right_a = (part_a["pred"] == part_a["true"]).to_numpy()
    right_b = (part_b["pred"] == part_b["true"]).to_numpy()
    group = np.select([right_a & right_b, right_a, right_b], ["both_right", "only_a", "only_b"], "both_wrong")
    faces = pd.DataFrame({
        "row": part_a.index.to_numpy(), "true": part_a["true"].to_numpy(),
        "pred_a": part_a["pred"].to_numpy(), "pred_b": part_b["pred"].to_numpy(),
        "right_a": right_a, "right_b": right_b, "group": group,
    })
    probabilities = [c for c in part_a.columns if c.startswith("p_")]
    for column in probabilities:
        faces[f"{column}_a"] = part_a[column].to_numpy()
        faces[f"{column}_b"] = part_b[column].to_numpy() if column in part_b else np.nan
    return Comparison(faces)


def per_class(comparison: Comparison) -> pd.DataFrame:
    """Per true class: faces, both accuracies, their difference and McNemar's p-value."""
    out = {}
    for code, name in enumerate(EMOTIONS):
        part = Comparison(comparison.faces[comparison.faces["true"] == code])
        out[name] = {"faces": part.n, "A": part.accuracy_a, "B": part.accuracy_b,
                     "B - A": part.accuracy_b - part.accuracy_a, "p": part.p_value}
    return pd.DataFrame(out).T.astype({"faces": int})


def main(argv: list[str] | None = None) -> int:
    """CLI: compare two predictions tables on one split."""
    parser = argparse.ArgumentParser(prog="python -m fer.compare", description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="predictions CSV of model A (fer.evaluate writes them)")
    parser.add_argument("b", type=Path, help="predictions CSV of model B")
    parser.add_argument("--split", choices=EVAL_SPLITS, default="PrivateTest")
    parser.add_argument("--faces", choices=("all", "no_twin", "twin"), default="all",
                        help="all faces, only those without a copy in Training, or only those with one (fer.twins)")
    args = parser.parse_args(argv)
    try:
        a, b = pd.read_csv(args.a), pd.read_csv(args.b)
        if args.faces != "all":
            from fer.twins import load_twins, select_by_twin

            twins = load_twins()
            a, b = select_by_twin(a, twins, args.faces), select_by_twin(b, twins, args.faces)
        comparison = compare(a, b, args.split)
    except (FileNotFoundError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"A = {args.a.name}, B = {args.b.name}, {args.split}, faces: {args.faces}")
    print(comparison.summary())
    table = per_class(comparison)
    print(table.to_string(formatters={"A": "{:.2%}".format, "B": "{:.2%}".format, "B - A": "{:+.2%}".format,
                                      "p": "{:.3g}".format}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
