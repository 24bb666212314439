"""Average the weights of snapshots of one training chain into a single model.

``python -m fer.soup --model runs/a/model.h5 --model runs/b/model.h5 --out runs/soup_ab``

Snapshots of a warm-restart chain (``fer.train --init-from``) stay close enough in weight space
that their average is itself a good model (a "model soup", as in stochastic weight averaging):
one network, so it costs no more per face than a member, unlike an ensemble. Averaged
batch-norm statistics do not describe the averaged network, so they are re-estimated exactly
from training faces (and their mirror images) with the members' illumination correction.

The output folder gets ``model.h5`` and its card: the last member's card, with this command,
zero epochs, a ``warm_start`` record of the last member (so the training chain stays traceable),
and a ``soup`` record naming every member. ``python -m fer.release --run OUT`` releases it.
An output folder that already holds a run (a member's, or any other) is refused, never overwritten.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fer.cli import at_least, command_line
from fer.metadata import machine_description, metadata_path, read_metadata, run_record, write_metadata

if TYPE_CHECKING:
    import keras

# Card keys that describe a model's evaluation or release, not its weights: dropped, since the
# soup is evaluated afresh (``fer.release`` or ``fer.evaluate``).
_STALE_KEYS: tuple[str, ...] = (
    "metrics", "metrics_tta", "metrics_tta_shifts", "metrics_ferplus", "metrics_ferplus_tta",
    "metrics_ferplus_tta_shifts", "history", "released_from", "evaluate_command", "notes", "ablation",
    "ablation_10_epochs", "landmark_experiment", "final_train_accuracy_eval_mode",
    "stopped_by_time_budget_in_epoch", "model_sha256",
)


def average_weights(weight_lists: list[list[np.ndarray]]) -> list[np.ndarray]:
    """The element-wise mean of several models' weight lists (same architecture, same order).

    Raises:
        ValueError: if there are no members or their weight shapes differ.
    """
    if not weight_lists:
        raise ValueError("no models to average")
    shapes = [w.shape for w in weight_lists[0]]
    for weights in weight_lists[1:]:
        if [w.shape for w in weights] != shapes:
            raise ValueError("the models have different weight shapes (another architecture?)")
    return [np.mean([weights[i] for weights in weight_lists], axis=0, dtype=np.float64).astype(weight_lists[0][i].dtype)
            for i in range(len(shapes))]


def recalibrate_batchnorm(model: keras.Model, x: np.ndarray, batch_size: int = 512) -> int:
    """Sets every batch-norm layer's moving mean and variance to the exact statistics of its
    inputs over ``x``, layer by layer in order (each layer sees the already-corrected earlier ones).

    Returns:
        The number of batch-norm layers recalibrated.
    """
    import keras

    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in layers:
        probe = keras.Model(model.input, layer.input)
        total = total_sq = None
        count = 0
        for start in range(0, len(x), batch_size):
            feats = np.asarray(probe(x[start:start + batch_size], training=False), dtype=np.float64)
            axes = tuple(range(feats.ndim - 1))
            s, sq = feats.sum(axis=axes), np.square(feats).sum(axis=axes)
            total, total_sq = (s, sq) if total is None else (total + s, total_sq + sq)
            count += int(np.prod([feats.shape[a] for a in axes]))
        mean = total / count
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(np.maximum(total_sq / count - mean**2, 0.0).astype(np.float32))
    return len(layers)


def out_files(out: Path) -> list[Path]:
    """The files :func:`make_soup` writes into ``out``."""
    return [out / "model.h5", metadata_path(out / "model.h5"), out / "history.csv"]


def check_out(out: Path, members: list[Path]) -> None:
    """Refuses an output folder whose files the soup would overwrite: a member's run, or another.

    Raises:
        FileExistsError: ``out/model.h5`` is a member, or ``out`` already holds a run's files.
    """
    target = (out / "model.h5").resolve()
    for member in members:
        if member.resolve() == target:
            raise FileExistsError(f"--out {out} is the folder of the member {member}: the soup would overwrite it; "
                                  "choose a new folder")
    existing = [path.name for path in out_files(out) if path.exists()]
    if existing:
        raise FileExistsError(f"--out {out} already holds a run ({', '.join(existing)}); choose a new folder")


def make_soup(members: list[Path], out: Path, data: str | None = None, bn_faces: int = 8000,
              seed: int = 0, command: str = "") -> Path:
    """Averages ``members`` into ``out/model.h5`` with a card, and returns its path.

    Args:
        members: ``.h5`` models of one architecture and illumination correction.
        out: output folder.
        data: FER2013 CSV for the batch-norm faces (default: the shared CSV).
        bn_faces: training faces drawn for the batch-norm statistics (each also mirrored).
        seed: seed of that draw.
        command: the command line to record in the card.

    Raises:
        ValueError: members of different architectures or pre-processing, or none, or
            ``bn_faces`` below 1.
        FileNotFoundError: a missing member or card.
        FileExistsError: ``out`` already holds a run (a member, or any other), which the
            soup would overwrite.
    """
    from fer.data import load_fer2013
    from fer.models import load_saved_model
    from fer.paths import FER2013_CSV
    from fer.preprocess import to_model_input

    started = time.perf_counter()
    if not members:
        raise ValueError("no models to average")
    if bn_faces < 1:
        raise ValueError(f"bn_faces must be at least 1, not {bn_faces}: batch-norm statistics need faces")
    check_out(out, members)
    cards = []
    for path in members:
        if not path.is_file() or not metadata_path(path).is_file():
            raise FileNotFoundError(f"{path}: no model with a card (model .h5 and .json) there")
        cards.append(read_metadata(path))
    for key, part in (("architecture", "name"), ("preprocessing", "illumination"), ("preprocessing", "landmarks")):
        values = {str(card.get(key, {}).get(part)) for card in cards}
        if len(values) > 1:
            raise ValueError(f"the models differ in {key} {part}: {', '.join(sorted(values))}")
    if cards[-1].get("preprocessing", {}).get("landmarks"):
        raise ValueError("landmark-input models are not supported")
    models = [load_saved_model(path) for path in members]
    soup = models[-1]
    soup.set_weights(average_weights([model.get_weights() for model in models]))

    illumination = cards[-1].get("preprocessing", {}).get("illumination", "none")
    train_faces, _, _ = load_fer2013(data or FER2013_CSV).split("Training")
    rng = np.random.default_rng(seed)
    chosen = train_faces[np.sort(rng.choice(len(train_faces), min(bn_faces, len(train_faces)), replace=False))]
    x = to_model_input(chosen, illumination)
    # Training saw mirrored faces half the time, so the statistics include both.
    layers = recalibrate_batchnorm(soup, np.concatenate([x, x[:, :, ::-1]]))

    out.mkdir(parents=True, exist_ok=True)
    target = out / "model.h5"
    soup.save(target)
    records = [run_record(path) for path in members]
    card = {k: v for k, v in cards[-1].items() if k not in _STALE_KEYS}
    card.update({
        "name": out.name,
        "epochs_completed": 0,
        "train_wall_seconds": round(time.perf_counter() - started, 1),
        "machine": machine_description(),
        "command": command or "python -m fer.soup " + " ".join(f"--model {shlex.quote(str(m))}" for m in members)
        + f" --out {shlex.quote(str(out))}",
        "warm_start": records[-1],
        "soup": {"members": records, "bn_faces": len(chosen),
                 "bn_layers": layers, "bn_seed": seed},
    })
    write_metadata(target, card)
    # An empty history: fer.release joins it after the last member's chain of histories.
    (out / "history.csv").write_text("epoch,accuracy,loss,val_accuracy,val_loss\n")
    return target


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m fer.soup", description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, type=Path, help="a member .h5 (repeat)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (gets model.h5 and its card)")
    parser.add_argument("--data", default=None, help="FER2013 CSV for batch-norm statistics")
    parser.add_argument("--bn-faces", type=at_least(1), default=8000,
                        help="training faces for batch-norm statistics (at least 1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    command = command_line("fer.soup", argv)
    try:
        target = make_soup(args.model, args.out, args.data, args.bn_faces, args.seed, command)
    except (ValueError, OSError) as err:  # ModelFileError and DataFormatError are ValueErrors
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {target} (average of {len(args.model)} models)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
