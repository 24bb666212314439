"""Occlusion maps (fer.explain): the covered copies, the map on a known classifier, the overlay,
and the released model on smiling photos."""

import numpy as np
import pytest

from fer.explain import MIN_SCALE, PATCH, STRIDE, occluded_copies, occlusion_map, overlay, shared_scale
from fer.labels import EMOTIONS
from fer.paths import PHOTOS_DIR

# A "mouth" the synthetic classifier looks at: rows 30-41, columns 12-35 of a 48x48 face.
MOUTH = (slice(30, 42), slice(12, 36))


def _face(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    face = rng.integers(60, 120, size=(48, 48)).astype(np.uint8)
    face[MOUTH] = 230
    return face


def _mouth_classifier(faces: np.ndarray) -> np.ndarray:
    """Class 3 ("happy") grows with the mouth's brightness; the rest share what is left."""
    brightness = faces[:, MOUTH[0], MOUTH[1]].mean(axis=(1, 2)) / 255.0
    happy = 0.2 + 0.7 * brightness
    probs = np.repeat(((1 - happy) / 6)[:, None], 7, axis=1)
    probs[:, 3] = happy
    return probs


def test_copies_cover_one_square_each_with_the_mean_grey():
    face = _face()
    copies, squares = occluded_copies(face)
    side = (48 - PATCH) // STRIDE + 1
    assert copies.shape == (side * side, 48, 48) and len(squares) == side * side
    fill = round(float(face.mean()))
    for copy, (top, left) in zip(copies[::17], squares[::17], strict=True):
        changed = copy != face
        assert (copy[top:top + PATCH, left:left + PATCH] == fill).all()
        outside = changed.copy()
        outside[top:top + PATCH, left:left + PATCH] = False
        assert not outside.any()
    with pytest.raises(ValueError, match="grey face"):
        occluded_copies(np.zeros((48, 48, 3), np.uint8))


def test_map_finds_what_the_classifier_looks_at():
    face = _face()
    explained = occlusion_map(_mouth_classifier, face)
    assert explained.target == 3
    assert explained.probability == pytest.approx(_mouth_classifier(face[None])[0, 3])
    assert explained.drop.shape == (48, 48) and explained.drop.dtype == np.float32
    row, col = explained.peak
    assert 30 <= row < 42 and 12 <= col < 36
    assert explained.drop[MOUTH].mean() > 0.3
    assert np.abs(explained.drop[:12, :]).max() == 0.0  # squares there never touch the mouth
    # Explaining another class gives the opposite sign: covering the mouth raises it.
    assert occlusion_map(_mouth_classifier, face, target=0).drop[MOUTH].mean() < 0


def test_overlay_colours_evidence_for_red_and_against_blue():
    face = _face()
    drop = np.zeros((48, 48), np.float32)
    plain = overlay(face, drop, zoom=2)
    assert plain.shape == (96, 96, 3) and plain.dtype == np.uint8
    assert (plain[..., 0] == plain[..., 2]).all()  # nothing to show: the face stays grey
    drop[:24] = 2.0
    drop[24:] = -2.0
    coloured = overlay(face, drop, zoom=2).astype(int)
    assert (coloured[10, 40, 0] - coloured[10, 40, 2]) > 50
    assert (coloured[80, 40, 2] - coloured[80, 40, 0]) > 50
    faint = overlay(face, np.full((48, 48), 0.001, np.float32), zoom=2).astype(int)
    assert np.abs(faint[..., 0] - faint[..., 2]).max() < 10  # noise-sized maps stay faint



def test_maps_on_a_shared_scale_compare_colour_for_colour():
    face = _face()
    strong, weak = np.full((48, 48), 4.0, np.float32), np.full((48, 48), 1.0, np.float32)
    assert shared_scale([strong, -weak]) == 4.0 and shared_scale([weak * 0.1]) == MIN_SCALE

    def redness(image: np.ndarray) -> int:
        return int(image[..., 0].astype(int).mean() - image[..., 2].astype(int).mean())

    # Alone, each map is full red; on the shared scale the weak one is a quarter as red.
    assert redness(overlay(face, weak)) == redness(overlay(face, strong))
    shared = shared_scale([strong, weak])
    assert redness(overlay(face, weak, scale=shared)) < 0.3 * redness(overlay(face, strong, scale=shared))

@pytest.mark.skipif(not PHOTOS_DIR.is_dir(), reason="shared photos missing")
def test_released_model_rests_a_smile_on_the_mouth():
    """Smiling faces: covering the mouth lowers 'happy' more than covering the forehead."""
    from fer.pipeline import FerPipeline

    pipeline = FerPipeline()
    for name in ("dlib_tom_cruise.jpg", "deepface_img24.jpg", "pyfeat_single_face.jpg", "fr_obama_small.jpg"):
        face = pipeline.analyze_path(PHOTOS_DIR / name).faces[0]
        assert face.label == "happy", name
        explained = occlusion_map(pipeline.classify, face.gray_face)
        assert EMOTIONS[explained.target] == "happy"
        assert explained.probability == pytest.approx(face.score, abs=1e-4)
        mouth, forehead = explained.drop[30:44, 10:38].mean(), explained.drop[2:14, 10:38].mean()
        assert mouth > forehead + 0.5, (name, mouth, forehead)
        row, col = explained.peak
        assert 30 <= row < 44 and 10 <= col < 38, (name, explained.peak)  # the strongest evidence: the mouth
