import numpy as np
import pytest

keras = pytest.importorskip("keras")

from test_models import _toy_csv  # noqa: E402

from fer.data import file_sha256  # noqa: E402
from fer.distill import blend_targets, describe_soft_targets, load_soft_targets, main, soften  # noqa: E402
from fer.preprocess import to_model_input  # noqa: E402
from fer.train import parse_args, train  # noqa: E402


def test_soften_and_blend():
    p = np.array([[0.7, 0.2, 0.1, 0, 0, 0, 0], [1 / 7] * 7])
    np.testing.assert_allclose(soften(p, 1.0), p, atol=1e-9)
    flat = soften(p, 2.0)
    np.testing.assert_allclose(flat.sum(1), 1.0)
    # T = 2 takes square roots before renormalising (zeros count as 1e-12): the order stays, the gaps shrink.
    np.testing.assert_allclose(flat[0, :3], np.sqrt(p[0, :3]) / np.sqrt(p[0, :3]).sum(), rtol=1e-4)
    np.testing.assert_allclose(flat[1], p[1])
    with pytest.raises(ValueError, match="positive"):
        soften(p, 0.0)

    blended = blend_targets(np.array([3, 0]), p.astype(np.float32), 0.25)
    assert blended.dtype == np.float32
    np.testing.assert_allclose(blended.sum(1), 1.0, rtol=1e-6)
    assert blended[0, 3] == pytest.approx(0.75) and blended[0, 0] == pytest.approx(0.25 * 0.7)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        blend_targets(np.array([3, 0]), p, 1.5)


def test_distill_writes_targets_by_row_and_training_follows_them(tmp_path, monkeypatch, capsys):
    from fer.data import load_fer2013

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    data = _toy_csv(tmp_path, n=64)

    def run(name, *extra):
        return train(parse_args(["--data", str(data), "--out", str(tmp_path / name), "--batch-size", "16",
                                 "--lr", "3e-3", *extra])[0], tmp_path / name)

    teacher = run("teacher", "--epochs", "1")
    out = tmp_path / "teacher.npz"
    assert main(["--teacher", str(teacher), "--out", str(out), "--temperature", "2", "--data", str(data)]) == 0
    assert "48 faces" in capsys.readouterr().out
    recorded = describe_soft_targets(out)
    assert recorded["teachers"] == [str(teacher)] and recorded["temperature"] == 2.0
    assert recorded["command"].startswith("python -m fer.distill --teacher")
    faces, labels, rows = load_fer2013(str(data)).split("Training")
    targets = load_soft_targets(out, rows[::-1])
    assert targets.shape == (48, 7)
    np.testing.assert_array_equal(targets, load_soft_targets(out, rows)[::-1])
    np.testing.assert_allclose(targets.sum(1), 1.0, rtol=1e-5)
    with pytest.raises(KeyError, match="no soft target for 1 rows"):
        load_soft_targets(out, np.array([10_000]))
    assert main(["--teacher", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "x.npz"),
                 "--data", str(data)]) == 2

    # A teacher that swaps happy (3) and sad (4), at full weight: the student must learn the swap.
    swapped = np.eye(7, dtype=np.float32)[np.where(labels == 3, 4, 3)]
    np.savez(tmp_path / "swapped.npz", rows=rows, targets=swapped)
    student = run("student", "--epochs", "4", "--soft-targets", str(tmp_path / "swapped.npz"), "--soft-weight", "1")
    from fer.metadata import read_metadata

    card = read_metadata(student)["distillation"]
    assert card["weight"] == 1.0 and card["targets"].endswith("swapped.npz") and card["teachers"] == []
    assert card["sha256"] == file_sha256(tmp_path / "swapped.npz")
    assert read_metadata(student)["training"]["soft_targets"] == card["targets"]
    model = keras.models.load_model(student, compile=False)
    predicted = model.predict(to_model_input(faces), verbose=0).argmax(1)
    assert (predicted == swapped.argmax(1)).mean() > 0.8

    # Resuming after the targets file was rewritten is refused: the path alone is not enough.
    np.savez(tmp_path / "swapped.npz", rows=rows, targets=np.eye(7, dtype=np.float32)[labels])
    with pytest.raises(SystemExit, match="soft targets .* changed since the run started"):
        run("student", "--epochs", "5", "--soft-targets", str(tmp_path / "swapped.npz"), "--soft-weight", "1")

    # Targets of another dataset, a weight without targets and a bad temperature are refused.
    with pytest.raises(SystemExit, match="another dataset"):
        np.savez(tmp_path / "other.npz", rows=rows, targets=swapped, source_sha256="0" * 64)
        run("other", "--epochs", "0", "--soft-targets", str(tmp_path / "other.npz"))
    with pytest.raises(SystemExit):
        parse_args(["--out", "x", "--soft-weight", "0.3"])
    assert "needs --soft-targets" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--teacher", str(teacher), "--out", str(tmp_path / "y.npz"), "--temperature", "0"])
    assert "must be positive" in capsys.readouterr().err
    parse_args(["--out", "x", "--soft-targets", "t.npz", "--label-smoothing", "0.1"])
    assert "also smooths the teacher's share" in capsys.readouterr().err


def test_ferplus_targets_are_vote_shares_or_the_label():
    from fer.distill import ferplus_targets

    shares = np.array([[0.0, 0, 0, 0.8, 0.2, 0, 0], [0.0] * 7])
    targets = ferplus_targets(shares, np.array([4, 2]))
    assert targets.dtype == np.float32
    np.testing.assert_allclose(targets[0], shares[0])  # the crowd's shares, even against the label
    np.testing.assert_array_equal(targets[1], np.eye(7)[2])  # no emotion vote: the FER2013 label
    with pytest.raises(ValueError, match="for 3 labels"):
        ferplus_targets(shares, np.array([4, 2, 1]))


def test_ferplus_teacher_needs_the_canonical_csv(tmp_path, monkeypatch, capsys):
    from fer.data import load_fer2013
    from fer.ferplus import majority_label
    from fer.paths import FER2013_CSV

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    toy = _toy_csv(tmp_path, n=64)
    assert main(["--ferplus", "--out", str(tmp_path / "x.npz"), "--data", str(toy)]) == 2
    assert "not the 35,887 of the full FER2013 CSV" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--ferplus", "--teacher", "a.h5", "--out", str(tmp_path / "x.npz")])
    if not FER2013_CSV.is_file():
        pytest.skip(f"{FER2013_CSV} not available")
    monkeypatch.delenv("FER_CACHE_DIR")
    out = tmp_path / "ferplus.npz"
    assert main(["--ferplus", "--out", str(out)]) == 0
    assert "28709 faces" in capsys.readouterr().out
    assert describe_soft_targets(out)["teachers"] == ["FER+ crowd votes"]
    from fer.ferplus import load_ferplus_votes

    dataset = load_fer2013(FER2013_CSV)
    _, labels, rows = dataset.split("Training")
    targets = load_soft_targets(out, rows, dataset.checksum)
    majority = majority_label(load_ferplus_votes().votes[rows])
    voted = majority >= 0
    # Where the crowd voted, the target's top class is its plurality (ties aside); elsewhere the label.
    agree = targets[voted].argmax(1) == majority[voted]
    assert agree.mean() > 0.97
    np.testing.assert_array_equal(targets[~voted].argmax(1), labels[~voted])


def test_describe_teachers_names_the_crowd_or_the_models():
    from fer.distill import FERPLUS_TEACHER, describe_teachers

    assert "FER+ crowd's vote shares" in describe_teachers({"teachers": [FERPLUS_TEACHER], "temperature": 1.0})
    models = describe_teachers({"teachers": ["a.h5", "b.h5"], "temperature": 2.0})
    assert "flip-TTA probabilities of a.h5, b.h5 at temperature 2.0" in models


def test_describe_targets_gives_the_blend_or_the_teacher_alone():
    from fer.distill import FERPLUS_TEACHER, describe_targets

    crowd = {"teachers": [FERPLUS_TEACHER], "temperature": 1.0}
    assert describe_targets({**crowd, "weight": 0.3}).startswith("0.70 × the FER2013 label + 0.30 × the FER+ crowd")
    alone = describe_targets({**crowd, "weight": 1.0})
    assert alone.startswith("the FER+ crowd's vote shares") and "FER2013 label had no weight" in alone
    assert describe_targets(crowd).startswith("the FER2013 label blended with the FER+ crowd")


def test_out_without_npz_names_the_file_numpy_writes(tmp_path, monkeypatch, capsys):
    import fer.distill as distill

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    data = _toy_csv(tmp_path, n=64)
    teacher = tmp_path / "teacher.h5"
    # The teacher's run is not what this test is about: uniform probabilities stand in for it.
    monkeypatch.setattr(distill, "teacher_cards", lambda paths: {path: {} for path in paths})
    monkeypatch.setattr(distill, "teacher_probabilities", lambda cards, faces: np.full((len(faces), 7), 1 / 7))
    out = tmp_path / "dist" / "t2"
    assert main(["--teacher", str(teacher), "--out", str(out), "--data", str(data)]) == 0
    written = tmp_path / "dist" / "t2.npz"
    assert f"wrote {written}: 48 faces" in capsys.readouterr().out
    assert written.is_file() and not out.exists()
    assert describe_soft_targets(written)["command"].split("--out ")[1].startswith(str(written))
    assert load_soft_targets(written, np.arange(1)).shape == (1, 7)
    assert main(["--teacher", str(teacher), f"--out={tmp_path / 'v1.x'}", "--data", str(data)]) == 0
    assert (tmp_path / "v1.x.npz").is_file(), "a suffix other than .npz stays, as numpy keeps it"
    assert f"--out={tmp_path / 'v1.x.npz'}" in describe_soft_targets(tmp_path / "v1.x.npz")["command"]


def test_a_teacher_that_is_not_a_model_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from fer.metadata import write_metadata

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    data = _toy_csv(tmp_path, n=64)
    teacher = tmp_path / "garbage.h5"
    teacher.write_bytes(b"not a model")
    write_metadata(teacher, {"name": "garbage", "preprocessing": {"illumination": "none"}})
    assert main(["--teacher", str(teacher), "--out", str(tmp_path / "t.npz"), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {teacher} is not a saved Keras model") and "Traceback" not in err
    assert not (tmp_path / "t.npz").exists()
