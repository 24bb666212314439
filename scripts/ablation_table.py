"""Print the ablation table and the landmark-feature result from recorded runs.

``python scripts/ablation_table.py [--runs experiments/gpu_session1] [--evaluate runs/gpu_session1]``
``python scripts/ablation_table.py --at-epoch 10 --runs experiments/gpu_session1 --runs experiments/cpu_session3``

Reads each run's ``history.csv`` (validation = PublicTest, computed during training on exact
pixels) and, with ``--evaluate``, re-evaluates the returned models here with ``fer.evaluate``
on PublicTest only: the test split is never used for tuning.

``--at-epoch N`` gives the short, same-length ablation: a run counts if it planned exactly N
epochs, or if its learning rate was constant and it ran at least N (its first N epochs are then
an N-epoch run); ``--runs`` may be given several times and the first folder with a qualifying
run of that name wins.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a fresh clone

ROWS = [
    ("abl0_paper", "paper CNN (first reconstruction, 1.11M), Adam 1e-3, batch 128, 30 epochs"),
    ("abl1_bn", "+ batch normalisation"),
    ("abl2_aug", "+ augmentation (flip, shift, rotate, zoom, erase)"),
    ("abl3_recipe", "+ SGD 0.05 cosine warm-up, weight decay 5e-4, label smoothing 0.1"),
    ("abl4_hist", "+ histogram equalisation"),
]
# The short CPU protocol (``scripts/cpu_ablation.sh``): the same chain with the augmentation
# that fer_best uses and fer_best's optimiser recipe, 10 epochs each.
SHORT_ROWS = [
    ("abl0_paper", "paper CNN (first reconstruction, 1.11M), Adam 1e-3 constant, batch 128"),
    ("abl1_bn", "+ batch normalisation"),
    ("abl2_aug_fast", "+ augmentation (flip, shift, zoom, erase)"),
    ("abl3_adamw", "+ AdamW 2e-3, weight decay 0.05, cosine after 1 warm-up epoch, label smoothing 0.1"),
    ("abl4_hist_adamw", "+ histogram equalisation"),
    ("abl5_vgg_small", "+ vgg_small instead of the paper network (1.77M parameters)"),
]
LANDMARK_ROWS = [("lm0_paper", "paper CNN, face only"), ("lm1_landmarks", "paper CNN + 68 dlib landmarks input")]


def history_summary(run: Path, at_epoch: int | None = None) -> dict | None:
    """PublicTest figures of one run, or None if it is missing or does not fit ``at_epoch``."""
    path = run / "history.csv"
    if not path.is_file():
        return None
    rows = list(csv.DictReader(open(path)))
    hparams = json.loads((run / "hparams.json").read_text()) if (run / "hparams.json").is_file() else {}
    planned = hparams.get("epochs")
    if at_epoch is not None:
        constant = hparams.get("schedule") == "constant"
        if len(rows) < at_epoch or not (planned == at_epoch or constant):
            return None
        rows, planned = rows[:at_epoch], at_epoch
    if not rows:
        return None
    val = [float(r["val_accuracy"]) for r in rows]
    third = max(1, len(val) // 3)
    return {
        "epochs_done": len(val), "epochs_planned": planned, "final": val[-1], "best": max(val),
        "mean_last_third": sum(val[-third:]) / third, "seconds": sum(float(r["epoch_seconds"]) for r in rows),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", action="append", type=Path,
                        help="folder of recorded runs (repeatable; default experiments/gpu_session1)")
    parser.add_argument("--at-epoch", type=int, default=None, help="the short same-length ablation")
    parser.add_argument("--evaluate", default=None, type=Path, help="folder with the runs' model.h5 files")
    parser.add_argument("--write-card", default=None, type=Path,
                        help="store the table in this card ('ablation', or 'ablation_N_epochs' with --at-epoch)")
    args = parser.parse_args(argv)
    folders = args.runs or [Path("experiments/gpu_session1")]
    table = []
    groups = (SHORT_ROWS,) if args.at_epoch else (ROWS, LANDMARK_ROWS)
    for group in groups:
        print("| run | change | epochs | PublicTest final | best | mean of last third | here, fer.evaluate |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for name, label in group:
            found = ((f / name, s) for f in folders if (s := history_summary(f / name, args.at_epoch)))
            run_dir, summary = next(found, (None, None))
            local = ""
            if summary and args.evaluate and (args.evaluate / name / "model.h5").is_file():
                from fer.evaluate import evaluate_model

                model = args.evaluate / name / "model.h5"
                if not model.with_suffix(".json").is_file():
                    (model.with_suffix(".json")).write_text((run_dir / "model.json").read_text())
                local = f"{evaluate_model(model, splits=('PublicTest',)).metrics['PublicTest']['accuracy']:.4f}"
            if summary is None:
                print(f"| {name} | {label} | not run | | | | |")
                continue
            epochs = f"{summary['epochs_done']}/{summary['epochs_planned']}"
            print(f"| {name} | {label} | {epochs} | {summary['final']:.4f} | {summary['best']:.4f} | "
                  f"{summary['mean_last_third']:.4f} | {local} |")
            table.append({"run": name, "change": label, **summary, "public_test_here": local})
        print()
    if args.write_card:
        from fer.metadata import read_metadata, training_runs, write_metadata

        card = read_metadata(args.write_card)
        rows = [{"run": r["run"], "change": r["change"], "epochs": f"{r['epochs_done']}/{r['epochs_planned']}",
                 "PublicTest (final)": round(r["final"], 4), "PublicTest (best epoch)": round(r["best"], 4)}
                for r in table if r["run"].startswith("abl")]
        public = card["metrics"]["PublicTest"]["accuracy"]
        epochs = f"{card['epochs_completed']}/{card['training']['epochs']}"
        runs = training_runs(card)
        change = (f"this model: {card['training']['arch']} + BN + fast augmentation + AdamW cosine + label "
                  "smoothing + hist. equalisation (CPU, batch 256)")
        if distilled := card.get("distillation"):
            from fer.distill import from_crowd

            teachers = "FER+ crowd-vote soft targets" if from_crowd(distilled) else "distillation from earlier cycles"
            change += f" + {teachers} (last run)"
        if card.get("soup"):  # every run is an earlier model's; the card's own step is the averaging
            epochs = " + ".join(str(c.epochs) for c in runs) + " (warm restarts)"
            change += f" + weight average of {len(card['soup']['members'])} snapshots"
        elif len(runs) > 1:  # cosine cycles warm-restarted from earlier models: count them all
            epochs = " + ".join(str(c.epochs) for c in runs[:-1]) + f" + {epochs} (warm restarts)"
        rows.append({"run": card["name"], "change": change,
                     "epochs": epochs, "PublicTest (final)": public, "PublicTest (best epoch)": None})
        if args.at_epoch:
            card[f"ablation_{args.at_epoch}_epochs"] = rows
        else:
            card["ablation"] = rows
            card["landmark_experiment"] = [r for r in table if r["run"].startswith("lm")]
        write_metadata(args.write_card, card)
        print(f"wrote the ablation into {args.write_card}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
