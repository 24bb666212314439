"""Two models on the same test faces: where they agree, where one is right and the other wrong,
and whether the difference in accuracy is more than chance.

Two models scored on the same faces are paired data: what matters is how many faces one gets
right and the other wrong, not the two accuracies alone. McNemar's exact test asks whether those
two counts differ more than a fair coin would make them; with a few thousand faces a gap of a
few tenths of a point usually does not.

``python -m fer.compare A.predictions.csv B.predictions.csv [--split PrivateTest] [--faces no_twin]``
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fer.cli import argument_parser
from fer.labels import EMOTIONS, EVAL_SPLITS, PROB_COLUMNS

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

    Returns:
        Twice the smaller binomial tail (p = 1/2) of the split, at most 1; 1 with no discordant face.

    Raises:
        ValueError: for a negative count.
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
        """Faces compared."""
        return len(self.faces)

    def count(self, group: str) -> int:
        """Faces in one group of :data:`GROUPS`."""
        return int((self.faces["group"] == group).sum())

    @property
    def accuracy_a(self) -> float:
        """Model A's accuracy on these faces (0 without faces)."""
        return float(self.faces["right_a"].mean()) if self.n else 0.0

    @property
    def accuracy_b(self) -> float:
        """Model B's accuracy on these faces (0 without faces)."""
        return float(self.faces["right_b"].mean()) if self.n else 0.0

    def difference_interval(self, z: float = 1.96) -> tuple[float, float]:
        """95% (by default) confidence interval of accuracy B minus accuracy A for paired
        outcomes (Wald, from the discordant counts).
        """
        if not self.n:
            return (float("nan"), float("nan"))
        only_a, only_b = self.count("only_a"), self.count("only_b")
        difference = (only_b - only_a) / self.n
        spread = z * math.sqrt(max(only_a + only_b - (only_b - only_a) ** 2 / self.n, 0.0)) / self.n
        return difference - spread, difference + spread

    def ordered(self, group: str) -> pd.DataFrame:
        """The faces of one group, largest change in the true label's probability first (the
        clearest fixes and breaks), ties in row order.

        Raises:
            ValueError: for an unknown group.
        """
        if group not in GROUPS:
            raise ValueError(f"unknown group {group!r}; expected one of {', '.join(GROUPS)}")
        faces = self.faces[self.faces["group"] == group]
        true = faces["true"].to_numpy()
        index = np.arange(len(faces))
        p_a = faces[[f"p_{e}_a" for e in EMOTIONS]].to_numpy()[index, true]
        p_b = faces[[f"p_{e}_b" for e in EMOTIONS]].to_numpy()[index, true]
        return faces.iloc[np.argsort(-np.abs(p_b - p_a), kind="stable")]

    @property
    def p_value(self) -> float:
        """McNemar's exact test of the accuracy difference."""
        return mcnemar_exact(self.count("only_a"), self.count("only_b"))

    def summary(self) -> str:
        """One line: both accuracies, the difference with its interval, the discordant counts and
        the p-value.
        """
        low, high = self.difference_interval()
        return (f"n={self.n}: A {self.accuracy_a:.2%}, B {self.accuracy_b:.2%} "
                f"(B - A {100 * (self.accuracy_b - self.accuracy_a):+.2f} points, 95% CI {100 * low:+.2f} to "
                f"{100 * high:+.2f}); "
                f"A only right on {self.count('only_a')}, B only on {self.count('only_b')}; "
                f"McNemar exact p = {self.p_value:.3g}")


def compare(a: pd.DataFrame, b: pd.DataFrame, split: str) -> Comparison:
    """Pairs two per-face predictions tables on one split.

    Args:
        a: model A's predictions (``row``, ``split``, ``true``, ``pred`` and the probability
            columns, as ``fer.evaluate`` writes them).
        b: model B's, the same way.
        split: ``PublicTest`` or ``PrivateTest``.

    Returns:
        The paired outcomes, one row per face.

    Raises:
        ValueError: if a table lacks columns, the split is missing from either, or the two
            disagree on which faces it has or on their labels.
    """
    from fer.explorer import validate_predictions

    parts = []
    for name, table in (("A", a), ("B", b)):
        missing = [c for c in PROB_COLUMNS if c not in table.columns]
        if missing:
            raise ValueError(f"predictions {name} lack column(s) {', '.join(missing)}")
        table = validate_predictions(table)
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
    for column in PROB_COLUMNS:
        faces[f"{column}_a"] = part_a[column].to_numpy()
        faces[f"{column}_b"] = part_b[column].to_numpy()
    return Comparison(faces)


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of several p-values (NaN stays NaN and is not counted).

    Seven per-class tests at 0.05 each would call something "significant" by chance one time in
    three; the adjusted values keep that chance at 0.05 for the whole table.
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def per_class(comparison: Comparison) -> pd.DataFrame:
    """Per true class: faces, both accuracies, their difference, McNemar's p-value and the same
    adjusted for the seven tests (Holm). A class without faces has NaN figures.
    """
    out = {}
    for code, name in enumerate(EMOTIONS):
        part = Comparison(comparison.faces[comparison.faces["true"] == code])
        empty = part.n == 0
        out[name] = {"faces": part.n, "A": np.nan if empty else part.accuracy_a,
                     "B": np.nan if empty else part.accuracy_b,
                     "B - A": np.nan if empty else part.accuracy_b - part.accuracy_a,
                     "p": np.nan if empty else part.p_value}
    table = pd.DataFrame(out).T.astype({"faces": int})
    table["p (Holm)"] = holm(table["p"].to_numpy(np.float64))
    return table


def main(argv: list[str] | None = None) -> int:
    """CLI: compare two predictions tables on one split."""
    parser = argument_parser("python -m fer.compare", __doc__)
    parser.add_argument("a", type=Path, help="predictions CSV of model A (fer.evaluate writes them)")
    parser.add_argument("b", type=Path, help="predictions CSV of model B")
    parser.add_argument("--split", choices=EVAL_SPLITS, default="PrivateTest", help="test split to compare on")
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
                                      "p": "{:.3g}".format, "p (Holm)": "{:.3g}".format}))
    print("p: McNemar's exact test per class, unadjusted; p (Holm): adjusted for the seven tests")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
