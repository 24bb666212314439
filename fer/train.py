"""Train a registered architecture on FER2013: ``python -m fer.train``.

Each run folder gets ``hparams.json``, ``history.csv``, a per-epoch checkpoint (resumed
automatically after an interruption), and finally ``model.h5`` (architecture + weights, loadable
with ``keras.models.load_model(path, compile=False)``) with its metadata ``model.json``.

Backend-agnostic Keras 3: the same code trains on TensorFlow (CPU, here) and on JAX (GPU).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fer.cli import argument_parser, at_least, command_line, quiet_tensorflow
from fer.labels import EMOTIONS, one_hot
from fer.preprocess import ILLUMINATIONS, to_model_input

AUGMENTATIONS = ("flip", "shift", "rotate", "zoom", "erase", "turn")
# What ``--augment all`` meant before "turn" existed, so recorded commands keep their meaning.
ALL_AUGMENTATIONS = ("flip", "shift", "rotate", "zoom", "erase")
# The names of fer.models.ARCHITECTURES, spelled out so that ``--help`` and argument errors need
# not import Keras (and TensorFlow, seconds of start-up and log lines); a test keeps the two equal.
ARCHITECTURE_NAMES = ("paper", "paper_bn", "paper_he", "paper_landmarks", "paper_v2", "paper_w48", "paper_w48d",
                      "vgg", "vgg_small")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one run (written to ``hparams.json``)."""

    arch: str = "paper"
    data: str = ""
    epochs: int = 10
    batch_size: int = 512
    seed: int = 0
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "constant"
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    augment: tuple[str, ...] = ()
    illumination: str = "none"
    landmarks: str = ""
    time_budget: float = 0.0
    limit: int = 0
    steps_per_execution: int = 1
    init_from: str = ""
    soft_targets: str = ""
    soft_weight: float = 0.5


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """Parses the command line into a :class:`TrainConfig`."""
    from fer.paths import FER2013_CSV

    p = argument_parser("python -m fer.train", __doc__)
    p.add_argument("--arch", default="paper", choices=ARCHITECTURE_NAMES, help="registered architecture (fer.models)")
    p.add_argument("--data", default=str(FER2013_CSV), help="FER2013 CSV(.gz), image folder, or training pack .npz")
    p.add_argument("--out", required=True, help="run folder, e.g. runs/paper")
    p.add_argument("--epochs", type=at_least(0), default=10, help="0 saves the initial (or warm-started) model")
    p.add_argument("--batch-size", type=at_least(1), default=512, help="faces per training step")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights, shuffling and augmentation")
    p.add_argument("--optimizer", default="adam", choices=("adam", "adamw", "sgd"), help="optimiser")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (the peak, with a schedule)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="decoupled weight decay")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD (Nesterov) momentum")
    p.add_argument("--schedule", default="constant", choices=("constant", "cosine"),
                   help="learning rate over the run: constant, or cosine decay to 0")
    p.add_argument("--warmup-epochs", type=float, default=0.0, help="linear warm-up before the cosine decay")
    p.add_argument("--label-smoothing", type=float, default=0.0, help="share of each target spread over all classes")
    p.add_argument(
        "--augment", default="", help=f"comma-separated subset of {','.join(AUGMENTATIONS)}, or 'all' "
        f"({','.join(ALL_AUGMENTATIONS)})"
    )
    p.add_argument("--illumination", default="none", choices=ILLUMINATIONS,
                   help="illumination correction of each face: hist (histogram equalisation) or clahe "
                        "(its local, contrast-limited form)")
    p.add_argument("--landmarks", default="", help="landmark features .npz (for *_landmarks architectures)")
    p.add_argument("--time-budget", type=float, default=0.0,
                   help="stop cleanly after this many seconds, loading included (0: none)")
    p.add_argument("--limit", type=at_least(0), default=0,
                   help="use only the first N training faces (smoke tests; 0: all)")
    p.add_argument("--steps-per-execution", type=at_least(1), default=1,
                   help="training steps per compiled call (Keras' steps_per_execution)")
    p.add_argument("--init-from", default="",
                   help="warm start: the weights of this model.h5 (same architecture and pre-processing)")
    p.add_argument("--soft-targets", default="",
                   help="distillation: teacher targets .npz from python -m fer.distill")
    p.add_argument("--soft-weight", type=float, default=None,
                   help="share of the teacher in each target, the rest being the one-hot label (default 0.5)")
    args = p.parse_args(argv)
    if args.time_budget < 0:
        p.error(f"--time-budget must be 0 (none) or positive, not {args.time_budget}")
    if args.soft_weight is not None and not args.soft_targets:
        p.error("--soft-weight needs --soft-targets")
    args.soft_weight = 0.5 if args.soft_weight is None else args.soft_weight
    if not 0.0 <= args.soft_weight <= 1.0:
        p.error(f"--soft-weight must be in [0, 1], not {args.soft_weight}")
    if args.soft_targets and args.label_smoothing > 0:
        print("note: --label-smoothing also smooths the teacher's share of each soft target; "
              "distilled runs usually use --label-smoothing 0", file=sys.stderr)
    augment: tuple[str, ...] = ()
    if args.augment:
        augment = ALL_AUGMENTATIONS if args.augment == "all" else tuple(a.strip() for a in args.augment.split(","))
        unknown = set(augment) - set(AUGMENTATIONS)
        if unknown:
            p.error(f"unknown augmentation(s) {sorted(unknown)}; expected {','.join(AUGMENTATIONS)}")
    config = TrainConfig(
        arch=args.arch, data=args.data, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
        optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay, momentum=args.momentum,
        schedule=args.schedule, warmup_epochs=args.warmup_epochs, label_smoothing=args.label_smoothing,
        augment=augment, illumination=args.illumination, landmarks=args.landmarks,
        time_budget=args.time_budget, limit=args.limit, steps_per_execution=args.steps_per_execution,
        init_from=args.init_from, soft_targets=args.soft_targets, soft_weight=args.soft_weight,
    )
    return config, Path(args.out)


def load_training_arrays(data: str) -> tuple[dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], str]:
    """Loads ``{split: (images, labels, rows)}`` from a dataset path or a training pack.

    A training pack (``.npz`` made by :mod:`fer.pack`) carries the Training split as JPEG bytes
    and PublicTest exactly, for the trip to the GPU machine.

    Returns:
        The splits and the SHA-256 of the FER2013 source (for a pack, of the CSV it was made
        from), so a run hashes its data once.
    """
    if data.endswith(".npz"):
        from fer.pack import read_pack

        return read_pack(data)
    from fer.data import load_fer2013

    dataset = load_fer2013(data)
    return {split: dataset.split(split) for split in ("Training", "PublicTest")}, dataset.checksum


def load_run_data(config: TrainConfig) -> tuple[dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], str]:
    """:func:`load_training_arrays` of a run, Training cut to ``config.limit`` faces.

    Raises:
        SystemExit: for data that is missing or malformed, or that lacks Training faces to
            learn from or PublicTest faces to validate on (the project validates on PublicTest).
    """
    try:
        splits, data_sha256 = load_training_arrays(config.data)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(str(err)) from None
    for split in ("Training", "PublicTest"):
        if not len(splits[split][1]):
            raise SystemExit(f"no {split} faces in {config.data}: a run "
                             + ("learns from Training" if split == "Training" else "validates on PublicTest"))
    if config.limit:
        splits["Training"] = tuple(array[: config.limit] for array in splits["Training"])
    return splits, data_sha256


def build_augmenter(augment: tuple[str, ...], seed: int):
    """Returns a Keras ``Sequential`` of random layers (identity at inference) or ``None``."""
    import keras
    from keras import layers

    steps = []
    if "flip" in augment:
        steps.append(layers.RandomFlip("horizontal", seed=seed))
    if "rotate" in augment:
        steps.append(layers.RandomRotation(10 / 360, fill_mode="reflect", seed=seed + 1))
    if {"zoom", "shift", "turn"} & set(augment):
        from fer.augment import RandomZoomShift

        # Separable matrix products: Keras' affine layers cost 80x a VGG step on a GPU under JAX.
        steps.append(RandomZoomShift(
            zoom=0.15 if "zoom" in augment else 0.0, shift=0.1 if "shift" in augment else 0.0, seed=seed + 2,
            turn=0.15 if "turn" in augment else 0.0,
        ))
    if "erase" in augment:
        steps.append(layers.RandomErasing(factor=0.5, scale=(0.02, 0.15), value_range=(0, 255), seed=seed + 4))
    return keras.Sequential(steps, name="augment") if steps else None


def fresh_random_streams(model, seed: int, epoch: int) -> None:
    """Moves a resumed run's randomness past what its first ``epoch`` epochs drew.

    A checkpoint restores each random layer's stream (augmentation, dropout) at its start, and
    ``set_random_seed`` restarts the shuffling: a resumed run replayed its first epochs' batches
    with the very same augmentations and dropout masks, which the network had already fitted
    (training accuracy 76% -> 81%, 84% in two resumed epochs, validation flat). Each stream's
    counter moves on by a block per epoch and the shuffling gets a seed per epoch, so the
    resumed epochs draw numbers no earlier epoch drew (still reproducibly).
    """
    import keras

    keras.utils.set_random_seed(seed + 7919 * epoch)
    for variable in model.variables:
        if variable.path.endswith("seed_generator_state"):
            state = keras.ops.convert_to_numpy(variable)
            variable.assign(np.array([state[0], state[1] + epoch * 1_000_000], dtype=state.dtype))


def make_optimizer(config: TrainConfig, steps_per_epoch: int):
    """Builds the optimizer with its learning-rate schedule."""
    import keras

    lr = config.lr
    if config.schedule == "cosine":
        warmup = int(config.warmup_epochs * steps_per_epoch)
        total = max(1, config.epochs * steps_per_epoch - warmup)
        lr = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=config.lr / 10 if warmup else config.lr,
            decay_steps=total,
            alpha=0.0,
            warmup_target=config.lr if warmup else None,
            warmup_steps=warmup,
        )
    wd = config.weight_decay or None
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=config.momentum, nesterov=True, weight_decay=wd)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay)
    return keras.optimizers.Adam(lr, weight_decay=wd)


def _inputs(images: np.ndarray, rows: np.ndarray, config: TrainConfig, landmark_table: np.ndarray | None):
    x = to_model_input(images, config.illumination)
    if landmark_table is None:
        return x
    return {"face": x, "landmarks": landmark_table[rows]}


def train(config: TrainConfig, out: Path) -> Path:
    """Trains (or resumes) one run and returns the path of the saved ``model.h5``."""
    # The time budget counts from here: data loading and compilation use the same wall clock.
    budget_start = time.perf_counter()
    import keras

    from fer.models import build_model, uses_landmarks

    # Data first: a run the data cannot serve leaves no folder behind.
    splits, data_sha256 = load_run_data(config)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint.keras"
    state_path = out / "state.json"
    hparams_path = out / "hparams.json"
    hparams = asdict(config)
    if config.soft_targets and Path(config.soft_targets).is_file():
        from fer.data import file_sha256

        # The path alone would let a rewritten targets file change a run halfway through.
        hparams["soft_targets_sha256"] = file_sha256(Path(config.soft_targets))
    if hparams_path.is_file() and checkpoint.is_file():
        # Switches added since a run started take their defaults, so older runs still resume.
        previous = {**asdict(TrainConfig()), "augment": [], **json.loads(hparams_path.read_text())}
        current = dict(hparams, augment=list(config.augment))
        ignored = ["time_budget"]
        if "soft_targets_sha256" not in previous:  # older runs did not record it
            ignored.append("soft_targets_sha256")
        if config.schedule == "constant":
            # With a constant learning rate, more epochs extend a run without changing its past.
            ignored.append("epochs")
        for key in ignored:
            previous.pop(key, None)
            current.pop(key, None)
        changed = {key for key in previous.keys() | current.keys() if previous.get(key) != current.get(key)}
        if changed == {"soft_targets_sha256"} and "soft_targets_sha256" in current:
            raise SystemExit(f"{out}: the soft targets {config.soft_targets} changed since the run started; "
                             "use a new --out")
        if changed:
            raise SystemExit(f"{out} holds a run with other hyper-parameters; use a new --out")
    hparams_path.write_text(json.dumps(dict(hparams, augment=list(config.augment)), indent=2) + "\n")

    keras.utils.set_random_seed(config.seed)
    x_train, y_train, rows_train = splits["Training"]
    x_val, y_val, rows_val = splits["PublicTest"]
    targets = one_hot(y_train)
    if config.soft_targets:
        from fer.distill import blend_targets, load_soft_targets

        try:
            soft = load_soft_targets(config.soft_targets, rows_train, data_sha256)
        except (FileNotFoundError, KeyError, ValueError) as err:
            raise SystemExit(f"--soft-targets: {err}") from err
        targets = blend_targets(y_train, soft, config.soft_weight)
    landmark_table = None
    if config.landmarks:
        from fer.landmark_features import load_table

        landmark_table = load_table(config.landmarks)

    steps_per_epoch = int(np.ceil(len(y_train) / config.batch_size))
    initial_epoch = 0
    resuming = checkpoint.is_file() and state_path.is_file()
    core = build_model(config.arch)
    if config.landmarks and not uses_landmarks(core):
        raise SystemExit(f"--landmarks needs a *_landmarks architecture, not {config.arch}")
    if uses_landmarks(core) and not config.landmarks:
        raise SystemExit(f"{config.arch} needs --landmarks FEATURES.npz")
    if config.init_from and not resuming:
        warm_start(core, Path(config.init_from), config)
    augmenter = build_augmenter(config.augment, config.seed)
    if augmenter is not None and uses_landmarks(core):
        raise SystemExit("augmentation is not supported with landmark inputs (it moves the face, not the points)")
    if augmenter is None:
        train_model = core
    else:
        face = keras.Input(shape=core.input_shape[1:], name="face")
        train_model = keras.Model(face, core(augmenter(face)), name="train_" + core.name)
    train_model.compile(
        optimizer=make_optimizer(config, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
        steps_per_execution=config.steps_per_execution,
    )
    if resuming:
        initial_epoch = json.loads(state_path.read_text())["epoch"]
        _truncate_history(out / "history.csv", initial_epoch)
        # The freshly built model gets the checkpoint's weights and optimizer state (no custom
        # layer to deserialise), then random streams of its own for the epochs left.
        train_model.optimizer.build(train_model.trainable_variables)
        train_model.load_weights(checkpoint)
        fresh_random_streams(train_model, config.seed, initial_epoch)
        print(f"resuming {out} from epoch {initial_epoch}", flush=True)

    started = time.perf_counter()
    previous_seconds = json.loads(state_path.read_text()).get("seconds", 0.0) if initial_epoch else 0.0

    class _EpochState(keras.callbacks.Callback):
        """Times each epoch, saves the resumable checkpoint and enforces the time budget."""

        budget_hit = False
        epoch_start_weights = None

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_started = time.perf_counter()
            if config.time_budget:
                # A budget stop cuts this epoch short: the run then ends with these weights.
                self.epoch_start_weights = self.model.get_weights()

        def on_train_batch_end(self, batch, logs=None):
            if config.time_budget and time.perf_counter() - budget_start > config.time_budget:
                self.model.stop_training = True
                # Out of time on its last batch, the epoch is whole: it is saved as any other.
                self.budget_hit = batch + 1 < steps_per_epoch

        def on_epoch_end(self, epoch, logs=None):
            if self.budget_hit:
                # Keras still ends the interrupted epoch: keep the last complete one as the state.
                state = json.loads(state_path.read_text()) if state_path.is_file() else {"epoch": 0}
                seconds = previous_seconds + time.perf_counter() - started
                state.update(seconds=seconds, stopped_by_budget_in_epoch=epoch + 1)
                state_path.write_text(json.dumps(state))
                return
            if logs is not None:
                logs["epoch_seconds"] = round(time.perf_counter() - self.epoch_started, 3)
                logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            tmp = out / "checkpoint.tmp.keras"
            self.model.save(tmp)
            tmp.replace(checkpoint)
            seconds = previous_seconds + time.perf_counter() - started
            state_path.write_text(json.dumps({"epoch": epoch + 1, "seconds": seconds}))

    history = None
    epoch_state = _EpochState()
    if initial_epoch < config.epochs:
        history = train_model.fit(
            _inputs(x_train, rows_train, config, landmark_table),
            targets,
            batch_size=config.batch_size,
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            validation_data=(_inputs(x_val, rows_val, config, landmark_table), one_hot(y_val)),
            callbacks=[epoch_state, keras.callbacks.CSVLogger(str(out / "history.csv"), append=True)],
            verbose=1 if sys.stdout.isatty() else 2,
            shuffle=True,
        )
    # No state after zero epochs: the saved model is then the initial (or warm-started) one.
    state = json.loads(state_path.read_text()) if state_path.is_file() else {"epoch": 0, "seconds": 0.0}
    if epoch_state.budget_hit:
        # The stopped epoch ran part of its batches: model.h5, its card and the history hold the
        # completed epochs only, as the checkpoint a resume starts from does.
        train_model.set_weights(epoch_state.epoch_start_weights)
        _truncate_history(out / "history.csv", state["epoch"])
    core = _core_of(train_model)
    model_path = out / "model.h5"
    # Serving needs architecture + weights only; optimizer slots would triple the file.
    keras.saving.save_model(core, model_path, include_optimizer=False)
    core.compile(loss=keras.losses.CategoricalCrossentropy(), metrics=["accuracy"])
    train_eval = core.evaluate(
        _inputs(x_train, rows_train, config, landmark_table), one_hot(y_train), verbose=0, batch_size=512,
        return_dict=True,
    )
    _write_run_card(model_path, config, state, core, train_eval, history, data_sha256,
                    hparams.get("soft_targets_sha256", ""))
    print(json.dumps({"model": str(model_path), "epochs_done": state["epoch"], "seconds": round(state["seconds"], 1),
                      "train_accuracy": train_eval.get("accuracy")}), flush=True)
    return model_path


def warm_start(core, source: Path, config: TrainConfig) -> None:
    """Copies the weights of a trained model into ``core`` (a new schedule continues from them).

    Raises:
        SystemExit: if the source is missing, has another architecture, or was trained on other
            pre-processing (its card's illumination), which would silently change what it learnt.
    """
    from fer.metadata import metadata_path, read_metadata

    if not source.is_file():
        raise SystemExit(f"--init-from: no model at {source}")
    card = read_metadata(source) if metadata_path(source).is_file() else {}
    trained_arch = card.get("architecture", {}).get("name")
    if trained_arch and trained_arch != config.arch:
        raise SystemExit(f"--init-from: {source} is a {trained_arch}, not a {config.arch}")
    trained_illumination = card.get("preprocessing", {}).get("illumination")
    if trained_illumination and trained_illumination != config.illumination:
        raise SystemExit(f"--init-from: {source} was trained with --illumination {trained_illumination}, "
                         f"not {config.illumination}")
    from fer.models import ModelFileError, load_saved_model

    try:
        weights = load_saved_model(source).get_weights()
    except ModelFileError as err:
        raise SystemExit(f"--init-from: {err}") from None
    if [w.shape for w in weights] != [w.shape for w in core.get_weights()]:
        raise SystemExit(f"--init-from: the weights of {source} do not fit {config.arch}")
    core.set_weights(weights)
    print(f"warm start from {source}", flush=True)
    if card.get("training", {}).get("seed") == config.seed and config.augment:
        # The seed fixes the shuffle and every augmentation draw: the new cycle would replay the
        # source's batches epoch by epoch (training accuracy jumps as it re-learns them).
        print(f"warning: --seed {config.seed} is the seed {source} was trained with, so this run replays "
              "its shuffled, augmented batches; pass another --seed for fresh ones", file=sys.stderr, flush=True)


def _truncate_history(path: Path, epochs: int) -> None:
    """Drops history rows past the last checkpointed epoch (an interrupted or partial epoch).

    With no epoch left the file goes: its header may be a partial epoch's, which lacks the
    ``epoch_seconds`` and ``lr`` columns the next run's rows would be written under.
    """
    if not path.is_file():
        return
    if epochs == 0:
        path.unlink()
        return
    lines = path.read_text().splitlines(keepends=True)
    if len(lines) > epochs + 1:
        path.write_text("".join(lines[: epochs + 1]))


def _core_of(train_model):
    """Returns the classifier inside a training wrapper (augmentation is training-only)."""
    for layer in train_model.layers:
        if layer.name.startswith(("paper_cnn", "vgg")) and hasattr(layer, "layers"):
            return layer
    return train_model


def _write_run_card(model_path: Path, config: TrainConfig, state: dict, core, train_eval: dict, history,
                    data_sha256: str, targets_sha256: str = "") -> None:
    import keras

    from fer.metadata import machine_description, run_record, write_metadata

    summary: list[str] = []
    core.summary(print_fn=lambda line, *a, **k: summary.append(line))
    backend = keras.backend.backend()
    card = {
        "name": model_path.parent.name,
        "labels": list(EMOTIONS),
        "input_shape": list(core.inputs[0].shape[1:]),
        "preprocessing": {
            "illumination": config.illumination,
            "landmarks": bool(config.landmarks),
            "input": "uint8 grey 48x48 face, illumination-corrected, as float32 0-255; rescaled inside the model",
        },
        "architecture": {"name": config.arch, "parameters": int(core.count_params()), "summary": "\n".join(summary)},
        "training": dict(asdict(config), augment=list(config.augment)),
        "data_sha256": data_sha256,
        "epochs_completed": state["epoch"],
        "stopped_by_time_budget_in_epoch": state.get("stopped_by_budget_in_epoch"),
        "train_wall_seconds": round(state["seconds"], 1),
        "final_train_accuracy_eval_mode": train_eval.get("accuracy"),
        "machine": machine_description(),
        "keras": f"{keras.__version__} ({backend} backend)",
        "command": command_line("fer.train"),
    }
    if config.init_from:
        card["warm_start"] = run_record(Path(config.init_from))
    if config.soft_targets:
        from fer.distill import describe_soft_targets

        card["distillation"] = dict(describe_soft_targets(config.soft_targets), weight=config.soft_weight,
                                    sha256=targets_sha256)  # the file as hashed when the run started
    write_metadata(model_path, card)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    config, out = parse_args(argv)
    if config.data and not config.data.endswith(".npz") and not Path(config.data).exists():
        print(f"error: data not found: {config.data}", file=sys.stderr)
        return 2
    if config.soft_targets and not Path(config.soft_targets).is_file():
        print(f"error: soft targets not found: {config.soft_targets}", file=sys.stderr)
        return 2
    quiet_tensorflow()
    try:
        train(config, out)
    except SystemExit as err:
        if not isinstance(err.code, str):
            raise
        # The run's refusals (data, hyper-parameters, --init-from): a message, not a traceback.
        print(f"error: {err.code}", file=sys.stderr)
        return 2
    from fer.metadata import read_metadata

    card = read_metadata(Path(out) / "model.h5")
    if config.epochs > 0 and not card.get("epochs_completed") and card.get("stopped_by_time_budget_in_epoch"):
        # The budget ended the first epoch: model.h5 is the starting point, not a trained model.
        print("warning: --time-budget ended the run inside its first epoch, so model.h5 holds the starting "
              "weights, untrained; give a larger budget, or run the same command again to go on", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
