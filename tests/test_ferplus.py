"""The embedded FER+ table and the vote helpers."""

from __future__ import annotations

import numpy as np
import pytest

from fer import ferplus
from fer.data import file_sha256, load_ferplus
from fer.labels import EMOTIONS, FERPLUS_COLUMNS
from fer.paths import FERPLUS_CSV, FERPLUS_VOTES_PATH

needs_csv = pytest.mark.skipif(not FERPLUS_CSV.is_file(), reason=f"{FERPLUS_CSV} not available")


def _votes(**counts: int) -> np.ndarray:
    row = np.zeros(len(FERPLUS_COLUMNS), dtype=np.uint8)
    for name, count in counts.items():
        row[FERPLUS_COLUMNS.index(name)] = count
    return row


def test_embedded_table_is_small_and_well_formed():
    assert FERPLUS_VOTES_PATH.stat().st_size < 2_000_000
    table = ferplus.load_ferplus_votes()
    assert table.votes.shape == (ferplus.FER2013_ROWS, 10)
    assert table.votes.dtype == np.uint8
    assert table.usage.shape == (ferplus.FER2013_ROWS,)
    assert set(np.unique(table.usage)) == {"Training", "PublicTest", "PrivateTest"}
    # FER+ has 10 votes per face (one face has 9).
    assert set(np.unique(table.votes.sum(axis=1).astype(int))) <= {9, 10}


@needs_csv
def test_embedded_table_matches_csv():
    source = load_ferplus(FERPLUS_CSV, expected_rows=ferplus.FER2013_ROWS)
    table = ferplus.load_ferplus_votes()
    np.testing.assert_array_equal(table.votes, source.votes)
    np.testing.assert_array_equal(table.usage, source.usage)
    np.testing.assert_array_equal(table.image_names, source.image_names)
    assert ferplus.embedded_checksum() == file_sha256(FERPLUS_CSV)
    # shared/data/README.md: the FER+ plurality equals the FER2013 label on 64.4% of the 35,709
    # named rows that have votes.
    from fer.data import load_fer2013
    from fer.paths import FER2013_CSV

    if not FER2013_CSV.is_file():
        pytest.skip(f"{FER2013_CSV} not available")
    majority = ferplus.majority_label(table.votes)
    named = (table.image_names != "") & (majority >= 0)
    assert named.sum() == 35709
    assert round(float((majority[named] == load_fer2013(FER2013_CSV).labels[named]).mean()), 3) == 0.644


@needs_csv
def test_build_is_reproducible_and_matches_committed_file(tmp_path):
    out = tmp_path / "votes.npz"
    assert ferplus.main(["build", "--out", str(out)]) == 0
    assert out.read_bytes() == FERPLUS_VOTES_PATH.read_bytes(), "rebuild with `python -m fer.ferplus build`"


def test_build_reports_missing_csv(tmp_path, capsys):
    assert ferplus.main(["build", "--csv", str(tmp_path / "none.csv"), "--out", str(tmp_path / "x.npz")]) == 1
    assert "not found" in capsys.readouterr().err


def test_load_missing_file_says_how_to_build(tmp_path):
    with pytest.raises(FileNotFoundError, match="fer.ferplus build"):
        ferplus.load_ferplus_votes(tmp_path / "missing.npz")


def test_majority_over_the_seven_emotions():
    votes = np.stack([
        _votes(anger=3, happiness=5, contempt=2),  # happy
        _votes(sadness=4, fear=4, unknown=2),  # tie: the lower FER2013 code (fear=2 < sad=4)
        _votes(NF=10),  # no emotion vote
        _votes(contempt=6, surprise=1, unknown=3),  # contempt is not a FER2013 class
    ])
    assert ferplus.majority_label(votes).tolist() == [
        EMOTIONS.index("happy"), EMOTIONS.index("fear"), -1, EMOTIONS.index("surprise"),
    ]
    assert int(ferplus.majority_label(votes[0])) == EMOTIONS.index("happy")


def test_distributions():
    row = _votes(anger=2, neutral=6, NF=2)
    dist = ferplus.vote_distribution(row)
    assert dist.shape == (10,)
    assert dist[FERPLUS_COLUMNS.index("neutral")] == pytest.approx(0.6)
    emo = ferplus.emotion_distribution(row)
    assert emo.shape == (7,)
    assert emo[EMOTIONS.index("angry")] == pytest.approx(0.25)
    assert emo[EMOTIONS.index("neutral")] == pytest.approx(0.75)
    both = ferplus.emotion_distribution(np.stack([row, _votes(NF=10)]))
    assert both.sum(axis=1).tolist() == pytest.approx([1.0, 0.0])
    assert ferplus.vote_distribution(np.zeros((2, 10))).tolist() == [[0.0] * 10] * 2


def test_vote_shape_is_checked():
    with pytest.raises(ValueError, match=r"\(N, 10\)"):
        ferplus.emotion_votes(np.zeros((3, 7)))
