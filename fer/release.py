"""Release a trained run into ``models/``: ``python -m fer.release --run runs/NAME --name paper_cnn``.

Copies the model, merges its run card into ``models/<name>.json``, copies the training history
beside it, then evaluates it (``fer.evaluate``) so the card's metrics and the per-image
predictions come from the released file itself, and writes its checked LiteRT copy (``fer.lite``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fer.data import file_sha256
from fer.metadata import metadata_path, read_metadata, write_metadata
from fer.paths import MODELS_DIR

if TYPE_CHECKING:
    import pandas as pd


def release(run: Path, name: str, models_dir: Path = MODELS_DIR, tta: bool = False, data: str | None = None,
            notes: list[str] | None = None) -> Path:
    """Releases ``run/model.h5`` as ``models_dir/name.h5`` with card, history and predictions."""
    from fer.evaluate import evaluate_model, predictions_path, update_card
    from fer.lite import build_lite
    from fer.metadata import model_info

    source = run / "model.h5"
    if not source.is_file():
        raise FileNotFoundError(f"no model in {run}")
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / f"{name}.h5"
    shutil.copyfile(source, target)
    card = read_metadata(source)
    card["name"] = name
    card["released_from"] = str(run)
    card["model_sha256"] = file_sha256(target)  # lets a user check the weights the metrics describe
    card["notes"] = list(notes or [])
    history = combined_history(run)
    if history is not None:
        history.to_csv(models_dir / f"{name}.history.csv", index=False)
        card["history"] = f"{name}.history.csv"
    card["evaluate_command"] = f"python -m fer.evaluate --model models/{name}.h5" + (" --tta" if tta else "")
    write_metadata(target, card)
    for use_tta in (False, True) if tta else (False,):
        evaluation = evaluate_model(target, data, tta=use_tta)
        evaluation.predictions.to_csv(predictions_path(target, use_tta), index=False)
        update_card(target, evaluation, use_tta)
    if not model_info(target).landmarks:
        build_lite(target, data)  # the pipeline's fast copy; the old one no longer matches the weights
    return target


def combined_history(run: Path) -> pd.DataFrame | None:
    """The run's ``history.csv``, preceded by its warm start's (``cycle`` 1, 2, ...), or ``None``.

    Epochs are renumbered end to end so the curves show the whole training of a warm-restarted
    model, not only its last cycle.
    """
    import pandas as pd

    parts, seen = [], set()
    while run is not None and (run / "history.csv").is_file() and run.resolve() not in seen:
        seen.add(run.resolve())
        parts.insert(0, pd.read_csv(run / "history.csv"))
        model = run / "model.h5"
        source = read_metadata(model).get("warm_start", {}).get("from") if metadata_path(model).is_file() else None
        run = Path(source).parent if source else None
    if not parts:
        return None
    for cycle, part in enumerate(parts, start=1):
        part.insert(0, "cycle", cycle)
    history = pd.concat(parts, ignore_index=True)
    history["epoch"] = range(len(history))
    return history


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
