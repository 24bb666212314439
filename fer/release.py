"""Release a trained run into ``models/``: ``python -m fer.release --run runs/NAME --name paper_cnn``.

Copies the model, merges its run card into ``models/<name>.json``, copies the training history
beside it, then evaluates it (``fer.evaluate``) so the card's metrics and the per-image
predictions come from the released file itself.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from fer.metadata import read_metadata, write_metadata
from fer.paths import MODELS_DIR


def release(run: Path, name: str, models_dir: Path = MODELS_DIR, tta: bool = False, data: str | None = None,
            notes: list[str] | None = None) -> Path:
    """Releases ``run/model.h5`` as ``models_dir/name.h5`` with card, history and predictions."""
    from fer.evaluate import evaluate_model, predictions_path, update_card

    source = run / "model.h5"
    if not source.is_file():
        raise FileNotFoundError(f"no model in {run}")
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / f"{name}.h5"
    shutil.copyfile(source, target)
    card = read_metadata(source)
    card["name"] = name
    card["released_from"] = str(run)
    card["notes"] = list(notes or [])
    history = run / "history.csv"
    if history.is_file():
        shutil.copyfile(history, models_dir / f"{name}.history.csv")
        card["history"] = f"{name}.history.csv"
    card["evaluate_command"] = f"python -m fer.evaluate --model models/{name}.h5" + (" --tta" if tta else "")
    write_metadata(target, card)
    for use_tta in (False, True) if tta else (False,):
        evaluation = evaluate_model(target, data, tta=use_tta)
        evaluation.predictions.to_csv(predictions_path(target, use_tta), index=False)
        update_card(target, evaluation, use_tta)
    return target


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m fer.release", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--tta", action="store_true", help="also evaluate with flip test-time augmentation")
    parser.add_argument("--data", default=None)
    parser.add_argument("--note", action="append", default=[], help="a line for the card's notes (repeatable)")
    args = parser.parse_args(argv)
    path = release(args.run, args.name, tta=args.tta, data=args.data, notes=args.note)
    card = read_metadata(path)
    for split, metrics in card["metrics"].items():
        print(f"{split}: accuracy {metrics['accuracy']:.4f} macro-F1 {metrics['macro_f1']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
