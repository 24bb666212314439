import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fer.models import ARCHITECTURES, build_model  # noqa: E402
from fer.train import build_augmenter, parse_args, train  # noqa: E402


def test_paper_layer_sequence_and_size():
    model = build_model("paper")
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        "InputLayer", "Rescaling",
        "Conv2D", "Conv2D", "MaxPooling2D",
        "Conv2D", "Conv2D", "MaxPooling2D", "Dropout",
        "Conv2D", "Conv2D", "MaxPooling2D",
        "Flatten", "Dense", "Dropout", "Dense",
    ]
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert all(c.kernel_size == (3, 3) and c.activation.__name__ == "relu" for c in convs)
    pools = [(p.pool_size, p.strides) for p in model.layers if type(p).__name__ == "MaxPooling2D"]
    assert pools == [((3, 3), (2, 2)), ((3, 3), (2, 2)), ((2, 2), (2, 2))]
    assert [d.rate for d in model.layers if type(d).__name__ == "Dropout"] == [0.2, 0.2]
    assert model.layers[-1].activation.__name__ == "softmax" and model.output_shape == (None, 7)
    assert 1_000_000 <= model.count_params() <= 1_300_000


@pytest.mark.parametrize("arch", ["paper_w48", "paper_w48d", "paper_he"])
def test_paper_variants_keep_the_papers_bullets(arch):
    model = build_model(arch)
    kinds = [type(layer).__name__ for layer in model.layers if type(layer).__name__ != "Dropout"]
    body = ["Conv2D", "Conv2D", "MaxPooling2D"] * 3
    assert kinds == ["InputLayer", "Rescaling", *body, "Flatten", "Dense", "Dense"]
    assert all(c.activation.__name__ == "relu" for c in model.layers if type(c).__name__ == "Conv2D")
    assert [d.rate for d in model.layers if type(d).__name__ == "Dropout"] == [0.2, 0.2]
    assert 1_000_000 <= model.count_params() <= 1_300_000


def test_first_dropout_position():
    names = [layer.name for layer in build_model("paper_w48d").layers]
    assert names.index("dropout1") == names.index("pool3") + 1
    with pytest.raises(ValueError, match="first_dropout_after"):
        build_model("paper", first_dropout_after=1)


def test_registry_and_vgg_budget():
    assert {"paper", "vgg"} <= set(ARCHITECTURES)
    assert build_model("vgg").count_params() <= 10_000_000
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("resnet9000")


def test_augmenter_is_identity_at_inference():
    augmenter = build_augmenter(("flip", "shift", "rotate", "zoom", "erase"), seed=1)
    x = np.random.default_rng(0).uniform(0, 255, (2, 48, 48, 1)).astype("float32")
    assert np.allclose(keras.ops.convert_to_numpy(augmenter(x, training=False)), x)
    assert not np.allclose(keras.ops.convert_to_numpy(augmenter(x, training=True)), x)


def test_turn_bends_the_face_sideways_and_nothing_else():
    from fer.augment import _interpolation_matrices

    ones = keras.ops.ones((1,))
    zeros = keras.ops.zeros((1,))
    # No bend: the identity. A bend squeezes one side and stretches the other: a bright column
    # a quarter of the width right of the centre moves inwards, one as far left moves outwards.
    plain = keras.ops.convert_to_numpy(_interpolation_matrices(48, ones, zeros))[0]
    assert np.allclose(plain, np.eye(48))
    bent = keras.ops.convert_to_numpy(_interpolation_matrices(48, ones, zeros, keras.ops.full((1,), 0.15)))[0]
    for column in (35, 12):
        image = np.zeros(48, np.float32)
        image[column] = 1.0
        moved = bent @ image
        assert moved.argmax() < column and abs(moved.sum() - 1.0) < 0.4
    # Rows are untouched: the layer bends only the columns, and "turn" alone builds the layer.
    augmenter = build_augmenter(("turn",), seed=1)
    layer = augmenter.layers[0]
    assert layer.turn == 0.15 and layer.zoom == 0.0 and layer.shift == 0.0
    x = np.tile(np.linspace(0, 255, 48, dtype="float32")[:, None], (1, 48))[None, :, :, None]
    out = keras.ops.convert_to_numpy(augmenter(x, training=True))
    assert np.allclose(out, x, atol=1e-3), "a vertical gradient survives a horizontal bend"
    assert not np.allclose(keras.ops.convert_to_numpy(augmenter(x.transpose(0, 2, 1, 3), training=True)),
                           x.transpose(0, 2, 1, 3))


def _toy_csv(tmp_path, n=96):
    # Separable toy set: bright faces are "happy", dark faces "sad"; the loss must fall.
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        happy = i % 2 == 0
        pixels = rng.integers(150, 255, 2304) if happy else rng.integers(0, 100, 2304)
        usage = "Training" if i < n * 3 // 4 else "PublicTest"
        rows.append(f"{3 if happy else 4},{' '.join(map(str, pixels))},{usage}")
    path = tmp_path / "toy.csv"
    path.write_text("emotion,pixels,Usage\n" + "\n".join(rows) + "\n")
    return path


def test_training_lowers_loss_and_resumes(tmp_path, monkeypatch, capsys):
    import csv
    import json

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    data = _toy_csv(tmp_path)
    out = tmp_path / "run"

    def args(epochs, lr="3e-3"):
        return parse_args(["--data", str(data), "--out", str(out), "--epochs", str(epochs), "--batch-size", "16",
                           "--lr", lr])[0]

    model_path = train(args(3), out)
    history = list(csv.DictReader(open(out / "history.csv")))
    assert len(history) == 3 and float(history[-1]["loss"]) < float(history[0]["loss"])
    loaded = keras.models.load_model(model_path, compile=False)
    assert loaded.count_params() == build_model("paper").count_params()
    card = json.loads((out / "model.json").read_text())
    assert card["preprocessing"]["illumination"] == "none" and card["epochs_completed"] == 3

    # An interruption after epoch 2: the same command resumes from the checkpoint.
    (out / "state.json").write_text(json.dumps({"epoch": 2, "seconds": 1.0}))
    (out / "history.csv").write_text("".join(open(out / "history.csv").readlines()[:3]))
    train(args(3), out)
    assert "resuming" in capsys.readouterr().out
    assert len(list(csv.DictReader(open(out / "history.csv")))) == 3
    with pytest.raises(SystemExit, match="other hyper-parameters"):
        train(args(3, lr="1e-2"), out)



def test_a_fresh_process_resumes_a_run_with_fer_augment_layers(tmp_path):
    """The checkpoint of a run with shift/zoom holds fer.augment's own layer: a new process (as
    after an interruption) must be able to load it, not only the process that saved it."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    data, out = _toy_csv(tmp_path, n=48), tmp_path / "run"
    command = [sys.executable, "-m", "fer.train", "--data", str(data), "--out", str(out), "--epochs", "2",
               "--batch-size", "16", "--augment", "flip,shift,zoom"]
    env = {**os.environ, "FER_CACHE_DIR": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    root = Path(__file__).resolve().parents[1]
    subprocess.run(command, check=True, env=env, cwd=root, capture_output=True, timeout=300)
    (out / "state.json").write_text(json.dumps({"epoch": 1, "seconds": 1.0}))  # as if stopped after epoch 1
    resumed = subprocess.run(command, env=env, cwd=root, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming {out} from epoch 1" in resumed.stdout


def test_a_resumed_run_draws_fresh_random_numbers():
    """Checkpoints restore random streams at their start: a resume must not replay the augmentations,
    dropout masks and shuffling of the epochs already trained (toy run: training accuracy 0.18-0.21
    per epoch fresh, 0.62 on a replayed epoch)."""
    from fer.train import fresh_random_streams

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.RandomFlip("horizontal", seed=5),
                              keras.layers.Flatten(), keras.layers.Dropout(0.5, seed=6), keras.layers.Dense(2)])
    states = [v for v in model.variables if v.path.endswith("seed_generator_state")]
    assert len(states) == 2
    before = [keras.ops.convert_to_numpy(v).tolist() for v in states]
    x = np.ones((4, 8, 8, 1), np.float32)
    replayed = keras.ops.convert_to_numpy(model(x, training=True))
    for v, b in zip(states, before, strict=True):
        v.assign(np.array(b, dtype=keras.ops.convert_to_numpy(v).dtype))  # as a checkpoint restores them
    fresh_random_streams(model, seed=3, epoch=2)
    after = [keras.ops.convert_to_numpy(v).tolist() for v in states]
    assert [a[0] for a in after] == [b[0] for b in before]  # the same seeds, further along
    assert [a[1] - b[1] for a, b in zip(after, before, strict=True)] == [2_000_000, 2_000_000]
    assert not np.allclose(keras.ops.convert_to_numpy(model(x, training=True)), replayed)
    shuffled = np.random.random()
    keras.utils.set_random_seed(3 + 7919 * 2)
    assert np.random.random() == shuffled  # the shuffling is reseeded per epoch, reproducibly

def test_warm_start_copies_weights_and_checks_the_source(tmp_path, monkeypatch, capsys):
    import json

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    data = _toy_csv(tmp_path, n=32)

    def run(name, *extra):
        return train(parse_args(["--data", str(data), "--out", str(tmp_path / name), "--batch-size", "16",
                                 *extra])[0], tmp_path / name)

    first = run("first", "--epochs", "1")
    # Zero epochs: the saved model is exactly the warm start, so the weights must match.
    second = run("second", "--epochs", "0", "--init-from", str(first))
    a = keras.models.load_model(first, compile=False).get_weights()
    b = keras.models.load_model(second, compile=False).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    card = json.loads((tmp_path / "second" / "model.json").read_text())
    assert card["warm_start"]["from"] == str(first) and card["warm_start"]["epochs_completed"] == 1

    # Augmented warm restarts with the source's seed would replay its batches: warned, not refused.
    capsys.readouterr()
    run("replay", "--epochs", "0", "--augment", "flip", "--init-from", str(first))
    assert "replays its shuffled, augmented batches" in capsys.readouterr().err
    run("fresh", "--epochs", "0", "--augment", "flip", "--seed", "1", "--init-from", str(first))
    assert "replays" not in capsys.readouterr().err

    with pytest.raises(SystemExit, match="is a paper, not a paper_bn"):
        run("third", "--arch", "paper_bn", "--epochs", "0", "--init-from", str(first))
    with pytest.raises(SystemExit, match="trained with --illumination none, not hist"):
        run("fourth", "--illumination", "hist", "--epochs", "0", "--init-from", str(first))
    with pytest.raises(SystemExit, match="no model at"):
        run("fifth", "--epochs", "0", "--init-from", str(tmp_path / "missing.h5"))


def test_soup_averages_weights_and_recalibrates_batchnorm(tmp_path, monkeypatch):
    from fer.metadata import read_metadata, run_record, training_cycles
    from fer.soup import make_soup, recalibrate_batchnorm

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    data = _toy_csv(tmp_path, n=32)

    def run(name, *extra):
        return train(parse_args(["--data", str(data), "--out", str(tmp_path / name), "--batch-size", "16",
                                 "--arch", "paper_bn", "--epochs", "1", *extra])[0], tmp_path / name)

    first = run("first")
    second = run("second", "--seed", "1", "--init-from", str(first))
    soup_path = make_soup([first, second], tmp_path / "soup", data=str(data), bn_faces=16)
    members = [keras.models.load_model(p, compile=False) for p in (first, second)]
    soup = keras.models.load_model(soup_path, compile=False)
    for name in ("conv1_1", "dense", "probabilities"):
        expected = (members[0].get_layer(name).get_weights()[0] + members[1].get_layer(name).get_weights()[0]) / 2
        np.testing.assert_allclose(soup.get_layer(name).get_weights()[0], expected, rtol=1e-5, atol=1e-6)
    card = read_metadata(soup_path)
    assert [c.epochs for c in training_cycles(card)] == [1, 1, 0]
    assert training_cycles(card)[-1].command.startswith("python -m fer.soup --model")
    assert [m["from"] for m in card["soup"]["members"]] == [str(first), str(second)]
    # A run warm-started from the average records its members, so its card counts them all.
    assert run_record(soup_path)["soup"] == card["soup"]
    assert "metrics" not in card and card["preprocessing"] == read_metadata(second)["preprocessing"]

    # Recalibrated, every batch-norm layer normalises these very faces: each channel's output
    # has the layer's beta as mean and gamma squared as variance.
    x = np.random.default_rng(1).integers(0, 256, (40, 48, 48, 1)).astype(np.float32)
    assert recalibrate_batchnorm(soup, x, batch_size=16) >= 6
    for layer in (la for la in soup.layers if isinstance(la, keras.layers.BatchNormalization)):
        out = np.asarray(keras.Model(soup.inputs, layer.output)(x, training=False), dtype=np.float64)
        axes = tuple(range(out.ndim - 1))
        gamma, beta = (v.numpy() for v in (layer.gamma, layer.beta))
        np.testing.assert_allclose(out.mean(axis=axes), beta, atol=1e-3)
        variance = layer.moving_variance.numpy()
        np.testing.assert_allclose(out.var(axis=axes), gamma**2 * variance / (variance + layer.epsilon),
                                   rtol=1e-3, atol=1e-4)

    with pytest.raises(ValueError, match="differ in architecture"):
        make_soup([first, run("other", "--arch", "paper")], tmp_path / "bad", data=str(data), bn_faces=16)


def test_load_saved_model_says_what_is_wrong_with_a_file(tmp_path):
    from fer.models import ModelFileError, load_saved_model

    with pytest.raises(ModelFileError, match="model not found"):
        load_saved_model(tmp_path / "nope.h5")
    (tmp_path / "junk.h5").write_text("junk\n")
    with pytest.raises(ModelFileError, match="junk.h5 is not a saved Keras model"):
        load_saved_model(tmp_path / "junk.h5")
    model = build_model("paper")
    model.save(tmp_path / "paper.h5")
    assert load_saved_model(tmp_path / "paper.h5").count_params() == model.count_params()


def _tiny_run(folder):
    """A run folder holding an untrained tiny model with its card and a history."""
    from test_pipeline import write_tiny_model

    folder.mkdir(parents=True)
    model = write_tiny_model(folder)
    model.rename(folder / "model.h5")
    model.with_suffix(".json").rename(folder / "model.json")
    (folder / "history.csv").write_text("epoch,accuracy,loss,val_accuracy,val_loss\n0,0.3,1.8,0.3,1.8\n")
    return folder


def test_soup_never_overwrites_a_run(tmp_path, capsys):
    from fer.soup import main, make_soup

    data = _toy_csv(tmp_path, n=32)
    first, second, other = (_tiny_run(tmp_path / name) for name in ("first", "second", "other"))
    members = ["--model", str(first / "model.h5"), "--model", str(second / "model.h5")]
    before = {p: p.read_bytes() for run in (second, other) for p in run.iterdir()}
    for out, reason in ((second, "is the folder of the member"), (other, "already holds a run")):
        assert main([*members, "--out", str(out), "--bn-faces", "4", "--data", str(data)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --out {out} {reason}") and "choose a new folder" in err
    assert {p: p.read_bytes() for run in (second, other) for p in run.iterdir()} == before

    with pytest.raises(SystemExit) as stopped:
        main([*members, "--out", str(tmp_path / "soup"), "--bn-faces", "0", "--data", str(data)])
    assert stopped.value.code == 2 and "--bn-faces: must be at least 1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="at least 1"):
        make_soup([first / "model.h5"], tmp_path / "soup", data=str(data), bn_faces=0)
    assert not (tmp_path / "soup").exists()

    assert main([*members, "--out", str(tmp_path / "soup"), "--bn-faces", "4", "--data", str(data)]) == 0
    assert (tmp_path / "soup" / "model.h5").is_file()


class _TickingClock:
    """A stand-in for ``time`` in fer.train whose clock moves one second per reading, so that a
    time budget runs out at a known batch, whatever the machine's speed."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 1.0
        return self.now


def test_a_run_stopped_by_its_time_budget_keeps_completed_epochs_only(tmp_path, monkeypatch):
    """A budget that runs out during an epoch leaves model.h5, its card and history.csv at the
    end of the last completed epoch, as the checkpoint a resume starts from (they used to keep
    the weights after the stopped epoch's first batches and a history row of it)."""
    import csv
    import json

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    data = _toy_csv(tmp_path)  # 72 Training faces: 9 batches of 8 per epoch

    def run(name, budget, *extra):
        monkeypatch.setattr("fer.train.time", _TickingClock())
        out = tmp_path / name
        config = parse_args(["--data", str(data), "--out", str(out), "--batch-size", "8", "--lr", "3e-3",
                             "--time-budget", str(budget), *extra])[0]
        return train(config, out), out

    # About 14 clock readings reach epoch 2; the budget runs out at its third batch.
    model_path, out = run("cut", 16.5, "--epochs", "2")
    card = json.loads((out / "model.json").read_text())
    assert card["epochs_completed"] == 1 and card["stopped_by_time_budget_in_epoch"] == 2
    history = list(csv.DictReader(open(out / "history.csv")))
    assert len(history) == 1 and float(history[0]["epoch_seconds"]) > 0
    saved = keras.models.load_model(model_path, compile=False).get_weights()
    after_epoch_1 = keras.models.load_model(out / "checkpoint.keras", compile=False).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(saved, after_epoch_1, strict=True))

    # Cut in its first epoch, a warm start saves its source's weights and no history.
    second, out = run("cut_first", 4.5, "--epochs", "1", "--init-from", str(model_path))
    assert json.loads((out / "model.json").read_text())["epochs_completed"] == 0
    assert not (out / "history.csv").exists()
    warm = keras.models.load_model(second, compile=False).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(warm, saved, strict=True))


def test_a_run_cut_inside_its_first_epoch_warns_and_exits_1(tmp_path, monkeypatch, capsys):
    from fer.train import main

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("fer.train.time", _TickingClock())
    data = _toy_csv(tmp_path)
    args = ["--data", str(data), "--out", str(tmp_path / "cut"), "--batch-size", "8", "--epochs", "2",
            "--time-budget", "4.5"]
    assert main(args) == 1
    assert "warning: --time-budget ended the run inside its first epoch" in capsys.readouterr().err
