"""Release a trained run into ``models/``: ``python -m fer.release --run runs/NAME --name paper_cnn``.

Copies the model, merges its run card into ``models/<name>.json``, copies the training history
beside it, then evaluates it (``fer.evaluate``) so the card's metrics and the per-image
predictions come from the released file itself, and writes its checked LiteRT copy (``fer.lite``).

Every file is built in a staging folder inside ``models/`` and moved into place only once all
of them succeeded, so a failed release leaves the previous one as it was. Files of a previous
release under the same name that this one does not rebuild (its flip-TTA predictions, face map,
LiteRT copy) are removed: they describe other weights. Releasing over an existing name needs
``--replace``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from fer.cli import argument_parser, quiet_tensorflow
from fer.data import file_sha256
from fer.metadata import metadata_path, read_metadata, write_metadata
from fer.paths import MODELS_DIR

if TYPE_CHECKING:
    import pandas as pd


def release_files(target: Path) -> list[Path]:
    """Every file a release of ``target`` (``models/<name>.h5``) may own, model and card last.

    The order is the order they are moved into place: the card, which vouches for the weights
    (``model_sha256``, ``lite.source_sha256``), lands only after the weights it describes.
    """
    from fer.embedding import embedding_path
    from fer.evaluate import VIEWS, predictions_path
    from fer.lite import lite_path

    return [
        target.with_name(f"{target.stem}.history.csv"),
        *(predictions_path(target, tta, shifts) for tta, shifts in VIEWS),
        lite_path(target),
        embedding_path(target),
        target,
        metadata_path(target),
    ]


def check_name(name: str) -> None:
    """Refuses release names that are not a plain file stem.

    Raises:
        ValueError: an empty name, a path, or a name ending in ``.h5``.
    """
    if not name or name in (".", "..") or Path(name).name != name or "\\" in name or name.startswith("."):
        raise ValueError(f"release name {name!r} must be a plain name such as paper_cnn, not a path")
    if name.endswith(".h5"):
        raise ValueError(f"release name {name!r}: give it without .h5 (the model becomes <name>.h5)")


def release(run: Path, name: str, models_dir: Path = MODELS_DIR, tta: bool = False, data: str | None = None,
            notes: list[str] | None = None, replace: bool = False) -> Path:
    """Releases ``run/model.h5`` as ``models_dir/name.h5`` with card, history and predictions.

    Args:
        run: the run folder (``model.h5``, its card and ``history.csv``).
        name: the release name (file stem in ``models_dir``).
        models_dir: where released models live.
        tta: also evaluate with flip test-time augmentation.
        data: FER2013 CSV for the evaluation and the LiteRT check (default: shared, else embedded).
        notes: lines for the card's notes.
        replace: release over an existing model of that name.

    Returns:
        The released model's path.

    Raises:
        FileNotFoundError: no model or card in ``run``.
        FileExistsError: a release of that name exists and ``replace`` is false.
        ValueError: a bad name, model file or evaluation data (nothing in ``models_dir`` changes).
    """
    from fer.models import load_saved_model

    check_name(name)
    source = run / "model.h5"
    if not source.is_file():
        raise FileNotFoundError(f"no model in {run} (expected {source})")
    card = read_metadata(source)
    target = models_dir / f"{name}.h5"
    if not replace and (target.exists() or metadata_path(target).exists()):
        raise FileExistsError(f"{target} is already released: pass --replace to release over it")
    load_saved_model(source)  # a broken file fails here, with a clear message, before any work
    models_dir.mkdir(parents=True, exist_ok=True)
    # Inside models_dir, so each move into place is a rename on one filesystem.
    staging = Path(tempfile.mkdtemp(prefix=f".release-{name}-", dir=models_dir))
    try:
        build_release(source, card, staging / target.name, tta=tta, data=data, notes=notes,
                      run=run, recorded_path=target)
        install(staging / target.name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def build_release(source: Path, card: dict, staged: Path, *, tta: bool, data: str | None,
                  notes: list[str] | None, run: Path, recorded_path: Path) -> None:
    """Writes every file of a release beside ``staged`` (the model's path in the staging folder).

    ``recorded_path`` is where the model will live; the card names it, not the staging folder.
    """
    from fer.evaluate import evaluate_model, predictions_path, update_card
    from fer.lite import build_lite
    from fer.metadata import model_info

    name = staged.stem
    shutil.copyfile(source, staged)
    card = dict(card, name=name, released_from=str(run), notes=list(notes or []))
    card["model_sha256"] = file_sha256(staged)  # lets a user check the weights the metrics describe
    card.pop("history", None)
    history = combined_history(run)
    if history is not None:
        history.to_csv(staged.with_name(f"{name}.history.csv"), index=False)
        card["history"] = f"{name}.history.csv"
    card["evaluate_command"] = f"python -m fer.evaluate --model models/{name}.h5" + (" --tta" if tta else "")
    write_metadata(staged, card)
    for use_tta in (False, True) if tta else (False,):
        evaluation = evaluate_model(staged, data, tta=use_tta)
        if not evaluation.aligned:
            # The app, twins, pose and compare look a release's faces up by FER2013 row.
            raise ValueError(f"a release is evaluated on the FER2013 CSV: {evaluation.rows_problem}")
        evaluation.predictions.to_csv(predictions_path(staged, use_tta), index=False)
        update_card(staged, evaluation, use_tta)
    if not model_info(staged).landmarks:
        build_lite(staged, data, recorded_path=recorded_path)  # the pipeline's fast copy


def install(staged: Path, target: Path) -> None:
    """Moves a built release from its staging folder over ``target``'s, and removes the files of
    the previous release that the new one does not have (they describe the old weights).
    """
    for path in release_files(target):
        built = staged.with_name(path.name)
        if built.is_file():
            os.replace(built, path)
        elif path.is_file():
            path.unlink()


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
    parser = argument_parser("python -m fer.release", __doc__)
    parser.add_argument("--run", required=True, type=Path, help="run folder of fer.train, with its model.h5")
    parser.add_argument("--name", required=True, help="released name: models/NAME.h5 and the files beside it")
    parser.add_argument("--tta", action="store_true", help="also evaluate with flip test-time augmentation")
    parser.add_argument("--data", default=None,
                        help="FER2013 CSV or image folder to evaluate on (default: shared CSV, else embedded)")
    parser.add_argument("--note", action="append", default=[], help="a line for the card's notes (repeatable)")
    parser.add_argument("--replace", action="store_true",
                        help="release over an existing model of this name (its other files are removed)")
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR, help="default: the project's models/")
    args = parser.parse_args(argv)
    quiet_tensorflow()
    before = {p for p in release_files(args.models_dir / f"{args.name}.h5") if p.is_file()}
    try:
        path = release(args.run, args.name, models_dir=args.models_dir, tta=args.tta, data=args.data,
                       notes=args.note, replace=args.replace)
    except (ValueError, OSError) as err:  # ModelFileError and DataFormatError are ValueErrors
        print(f"error: {err}", file=sys.stderr)
        return 2
    for gone in sorted(p for p in before if not p.is_file()):
        print(f"removed {gone} (it described the previous weights)", file=sys.stderr)
    card = read_metadata(path)
    for split, metrics in card["metrics"].items():
        print(f"{split}: accuracy {metrics['accuracy']:.4f} macro-F1 {metrics['macro_f1']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
