import gzip

import numpy as np
import pytest
from PIL import Image

from fer.data import DataFormatError, load_fer2013, load_ferplus, load_image_folders, parse_fer2013_csv
from fer.labels import EMOTIONS
from fer.paths import FER2013_CSV, FERPLUS_CSV
from fer.preprocess import LOW_CONTRAST_SPREAD, grey_spread, lift_low_contrast


def _row(label: int | str, pixels: list[int] | str, usage: str = "Training") -> str:
    text = pixels if isinstance(pixels, str) else " ".join(str(p) for p in pixels)
    return f"{label},{text},{usage}"


def _write(tmp_path, rows, name="fer.csv", gz=False):
    body = "emotion,pixels,Usage\n" + "\n".join(rows) + "\n"
    path = tmp_path / name
    if gz:
        with gzip.open(path, "wt") as handle:
            handle.write(body)
    else:
        path.write_text(body)
    return path


GOOD = [
    _row(3, [i % 256 for i in range(2304)]),
    _row(0, [255] * 2304, "PublicTest"),
    _row(6, [0] * 2304, "PrivateTest"),
]


@pytest.mark.parametrize("gz", [False, True])
def test_parses_good_rows(tmp_path, gz):
    data = parse_fer2013_csv(_write(tmp_path, GOOD, "f.csv.gz" if gz else "f.csv", gz=gz))
    assert data.images.shape == (3, 48, 48) and data.images.dtype == np.uint8
    assert data.labels.tolist() == [3, 0, 6]
    assert data.usage.tolist() == ["Training", "PublicTest", "PrivateTest"]
    assert data.images[0, 0, 5] == 5 and data.images[1].min() == 255
    assert len(data.checksum) == 64


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (_row(3, [1] * 2303), "wrong pixel count 2303"),
        (_row(3, [1] * 2303 + [256]), "pixel 2303 value '256' out of range"),
        (_row(3, [1] * 2303 + [-1]), "out of range"),
        (_row(7, [1] * 2304), "unknown label '7'"),
        (_row("x", [1] * 2304), "unknown label 'x'"),
        (_row(3, [1] * 2304, "Validation"), "unknown usage 'Validation'"),
        ("3," + " ".join(["1"] * 2304), "expected 3 fields"),
    ],
)
def test_malformed_rows_name_row_and_reason(tmp_path, bad, message):
    path = _write(tmp_path, [GOOD[0], GOOD[1], bad])
    with pytest.raises(DataFormatError) as err:
        parse_fer2013_csv(path)
    assert "data row 2" in str(err.value) and message in str(err.value)


def test_short_row_then_long_row_is_not_accepted(tmp_path):
    # The totals add up (2303 + 2305), so only a per-row check catches it.
    path = _write(tmp_path, [GOOD[0], _row(3, [1] * 2303), _row(3, [1] * 2305)])
    with pytest.raises(DataFormatError, match="data row 1 .*wrong pixel count 2303"):
        parse_fer2013_csv(path)


def test_padded_fields_still_parse(tmp_path):
    path = _write(tmp_path, [" 3 ,  " + " ".join(["7"] * 2304) + " , PublicTest"])
    data = parse_fer2013_csv(path)
    assert data.labels.tolist() == [3] and data.images.min() == 7 and data.usage.tolist() == ["PublicTest"]


def test_bad_header(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("label,pixels,split\n" + GOOD[0] + "\n")
    with pytest.raises(DataFormatError, match="header"):
        parse_fer2013_csv(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_fer2013(tmp_path / "nope.csv")


def test_cache_roundtrip(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    path = _write(tmp_path, GOOD)
    first = load_fer2013(path)
    assert list((tmp_path / "cache").glob("*.npz"))
    import fer.data

    def no_parse(_path):
        raise AssertionError("the second load must come from the cache")

    monkeypatch.setattr(fer.data, "parse_fer2013_csv", no_parse)
    second = load_fer2013(path)
    assert np.array_equal(first.images, second.images) and second.checksum == first.checksum


def test_training_pack_carries_splits_and_source_checksum(tmp_path, monkeypatch):
    from fer.data import file_sha256
    from fer.pack import write_pack
    from fer.train import load_training_arrays

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    path = _write(tmp_path, GOOD)
    write_pack(str(path), str(tmp_path / "pack.npz"))
    from_csv, csv_sha = load_training_arrays(str(path))
    from_pack, pack_sha = load_training_arrays(str(tmp_path / "pack.npz"))
    assert csv_sha == pack_sha == file_sha256(path)
    for split in ("Training", "PublicTest"):
        assert np.array_equal(from_pack[split][1], from_csv[split][1])
        assert np.array_equal(from_pack[split][2], from_csv[split][2])
    assert np.array_equal(from_pack["PublicTest"][0], from_csv["PublicTest"][0])  # validation travels exactly
    # Training travels as JPEG: close, not exact.
    assert np.abs(from_pack["Training"][0].astype(int) - from_csv["Training"][0]).mean() < 8


def test_torn_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    path = _write(tmp_path, GOOD)
    load_fer2013(path)
    (cached,) = (tmp_path / "cache").glob("*.npz")
    cached.write_bytes(cached.read_bytes()[:100])
    assert load_fer2013(path).labels.tolist() == [3, 0, 6]


def _folder_fixture(root, entries):
    for folder, emotion, name, value in entries:
        directory = root / folder / emotion
        directory.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((48, 48), value, np.uint8)).save(directory / name)


def test_image_folders(tmp_path):
    _folder_fixture(tmp_path, [
        ("train", "happy", "Training_20.png", 20),
        ("train", "angry", "Training_3.png", 3),
        ("test", "sad", "PrivateTest_7.png", 7),
        ("test", "neutral", "PublicTest_9.png", 9),
    ])
    data = load_image_folders(tmp_path)
    assert data.usage.tolist() == ["Training", "Training", "PublicTest", "PrivateTest"]
    assert [EMOTIONS[i] for i in data.labels] == ["angry", "happy", "neutral", "sad"]
    assert data.images[:, 0, 0].tolist() == [3, 20, 9, 7]
    assert load_fer2013(tmp_path).counts() == {"Training": 2, "PublicTest": 1, "PrivateTest": 1}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (("train", "happiness", "Training_1.png", 1), "unknown label folder 'happiness'"),
        (("train", "happy", "img_1.png", 1), "unknown usage"),
    ],
)
def test_image_folder_errors(tmp_path, entry, message):
    _folder_fixture(tmp_path, [entry])
    with pytest.raises(DataFormatError, match=message):
        load_image_folders(tmp_path)


def test_image_folders_of_sixteen_bit_and_transparent_faces(tmp_path):
    # Decoded as the photos are: 16-bit greys scaled (not clipped white), transparency over white.
    happy, sad = tmp_path / "train" / "happy", tmp_path / "train" / "sad"
    happy.mkdir(parents=True)
    sad.mkdir(parents=True)
    ramp = np.tile(np.linspace(0, 65535, 48), (48, 1)).astype(np.uint16)
    Image.fromarray(ramp).save(happy / "Training_1.pgm")
    rgba = np.zeros((48, 48, 4), np.uint8)
    rgba[:, 24:] = (40, 40, 40, 255)  # the left half fully transparent
    Image.fromarray(rgba, "RGBA").save(sad / "Training_2.png")
    images = load_image_folders(tmp_path).images
    assert images[0, 0, 0] == 0 and images[0, 0, -1] == 255 and 100 < images[0, 0, 24] < 160
    assert images[1, 0, 0] == 255 and images[1, 0, -1] == 40


def test_image_folder_wrong_size(tmp_path):
    directory = tmp_path / "train" / "fear"
    directory.mkdir(parents=True)
    Image.fromarray(np.zeros((50, 48), np.uint8)).save(directory / "Training_1.png")
    with pytest.raises(DataFormatError, match="48x50; expected 48x48"):
        load_image_folders(tmp_path)


needs_csv = pytest.mark.skipif(not FER2013_CSV.is_file(), reason=f"FER2013 CSV not at {FER2013_CSV}")


@needs_csv
def test_full_csv_split_counts():
    data = load_fer2013(FER2013_CSV)
    assert data.counts() == {"Training": 28709, "PublicTest": 3589, "PrivateTest": 3589}
    _, labels, _ = data.split("PublicTest")
    assert np.bincount(labels).tolist() == [467, 56, 496, 895, 653, 415, 607]
    assert data.images[0, 0, :8].tolist() == [70, 80, 82, 72, 58, 58, 60, 63]


@pytest.mark.skipif(not FERPLUS_CSV.is_file(), reason="FER+ CSV missing")
def test_ferplus_aligned_by_row():
    votes = load_ferplus(FERPLUS_CSV, expected_rows=35887)
    assert votes.votes.shape == (35887, 10)
    assert votes.usage[28709] == "PublicTest" and votes.usage[-1] == "PrivateTest"
    with pytest.raises(DataFormatError, match="35887 rows; FER2013 has 5"):
        load_ferplus(FERPLUS_CSV, expected_rows=5)


def test_equalize_hist_is_opencv_bit_for_bit():
    """The NumPy equalisation (it runs where OpenCV is missing) must give OpenCV's pixels."""
    import cv2

    from fer.preprocess import correct_illumination, equalize_hist

    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (2500, 48, 48), dtype=np.uint8)  # more than one chunk
    faces[:500] //= rng.integers(1, 40, (500, 1, 1)).astype(np.uint8)  # dark, narrow histograms
    faces[500] = 7  # one grey level
    faces[501] = 0
    faces[501, 0, 0] = 200  # two grey levels
    expected = np.stack([cv2.equalizeHist(face) for face in faces])
    np.testing.assert_array_equal(equalize_hist(faces), expected)
    np.testing.assert_array_equal(correct_illumination(faces[3], "hist"), expected[3])  # one (H, W) face
    assert equalize_hist(faces[:0]).shape == (0, 48, 48)
    odd = rng.integers(0, 256, (3, 37, 61), dtype=np.uint8)  # not square
    np.testing.assert_array_equal(equalize_hist(odd), np.stack([cv2.equalizeHist(face) for face in odd]))
    for level in (0, 255):
        flat = np.full((48, 48), level, np.uint8)
        np.testing.assert_array_equal(equalize_hist(flat), cv2.equalizeHist(flat))
    with pytest.raises(ValueError, match="shape"):
        equalize_hist(faces[..., None])  # (N, H, W, 1) model input, not faces
    if FER2013_CSV.is_file():  # real faces, the ones models are trained on
        real = load_fer2013(FER2013_CSV).split("PublicTest")[0]
        np.testing.assert_array_equal(equalize_hist(real), np.stack([cv2.equalizeHist(f) for f in real]))


def test_grey_spread_and_lifting_flat_photos():
    ramp = np.tile(np.arange(256, dtype=np.uint8), (64, 1))
    assert abs(grey_spread(ramp) - 230) <= 2  # 5th to 95th percentile of a full ramp
    dark = (ramp // 8).astype(np.uint8)  # levels 0-31
    assert grey_spread(dark) < LOW_CONTRAST_SPREAD
    lifted = lift_low_contrast(dark)
    assert grey_spread(lifted) > 200 and lifted.dtype == np.uint8 and lifted.shape == dark.shape
    assert lift_low_contrast(ramp) is ramp  # contrast enough: the photo itself



def test_require_splits_names_the_empty_split(tmp_path):
    from fer.data import require_splits

    dataset = parse_fer2013_csv(_write(tmp_path, [_row(3, [1] * 2304), _row(4, [2] * 2304, "PrivateTest")]))
    require_splits(dataset, ("Training", "PrivateTest"))
    with pytest.raises(DataFormatError, match=r"no PublicTest faces in .*fer.csv \(it has Training 1, PrivateTest 1\)"):
        require_splits(dataset, ("Training", "PublicTest"))


def test_only_the_full_csv_and_the_embedded_faces_carry_fer2013_row_numbers(tmp_path):
    from dataclasses import replace

    from fer.data import fer2013_rows_problem
    from fer.testset import load_test_faces

    assert fer2013_rows_problem(load_test_faces()) is None
    subset = parse_fer2013_csv(_write(tmp_path, [_row(3, [1] * 2304, "PublicTest")]))
    assert "fer.csv has 1 face, not the 35,887 of the full FER2013 CSV" in fer2013_rows_problem(subset)
    assert "image folder" in fer2013_rows_problem(replace(subset, source=str(tmp_path)))
    # As many faces as FER2013 but in other splits (a shuffled copy): its numbers are not FER2013's.
    n = 35_887
    shuffled = replace(subset, images=np.zeros((n, 48, 48), np.uint8), labels=np.zeros(n, np.int64),
                       usage=np.array(["PrivateTest"] * n), rows=np.arange(n))
    assert "splits differ from FER2013's" in fer2013_rows_problem(shuffled)


@needs_csv
def test_the_full_csv_carries_fer2013_row_numbers():
    from fer.data import fer2013_rows_problem

    assert fer2013_rows_problem(load_fer2013(FER2013_CSV)) is None
