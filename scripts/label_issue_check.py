"""How well does the label-issue ranking find faces the FER+ crowd also disputes?

``python scripts/label_issue_check.py [--model models/paper_cnn.h5] [--split PrivateTest] [--top 100]``

Ranks the split's faces with the model's out-of-sample probabilities alone (FER+ weight 0, so
the check is not circular), then reports the share of the top-k whose FER+ majority label
differs from the FER2013 label, against that share over the whole split.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer.evaluate import PROB_COLUMNS, predictions_path  # noqa: E402
from fer.ferplus import load_ferplus_votes, majority_label  # noqa: E402
from fer.label_issues import rank_label_issues  # noqa: E402
from fer.paths import MODELS_DIR  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(MODELS_DIR / "paper_cnn.h5"))
    parser.add_argument("--split", default="PrivateTest")
    parser.add_argument("--top", type=int, default=100)
    args = parser.parse_args(argv)
    predictions = pd.read_csv(predictions_path(args.model))
    part = predictions[predictions["split"] == args.split].reset_index(drop=True)
    majority = majority_label(load_ferplus_votes().votes)[part["row"].to_numpy()]
    ranked = rank_label_issues(part["true"].to_numpy(), part[list(PROB_COLUMNS)].to_numpy(), weight_ferplus=0.0)
    has_votes = majority >= 0
    disputed = (majority != part["true"].to_numpy()) & has_votes
    top = ranked["index"].to_numpy()[: args.top]
    top = top[has_votes[top]]
    base = disputed[has_votes].mean()
    share = disputed[top].mean()
    flagged = ranked.loc[ranked["is_issue"], "index"].to_numpy()
    flagged = flagged[has_votes[flagged]]
    print(f"{Path(args.model).name} on {args.split}: {has_votes.sum()} faces with FER+ emotion votes")
    print(f"FER+ majority disagrees with the FER2013 label on {base:.1%} of them (base rate)")
    print(f"... on {share:.1%} of the model's top {len(top)} suspected label issues ({share / base:.1f}x)")
    print(f"... on {disputed[flagged].mean():.1%} of the {len(flagged)} confident-learning flags")
    return 0 if np.isfinite(share) else 1


if __name__ == "__main__":
    raise SystemExit(main())
