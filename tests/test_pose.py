"""Head pose from landmarks (``fer.pose``): the fit, its sign conventions on real photos, the
accuracy-by-pose table and the caution the Predict page shows."""

from __future__ import annotations

import io
import json
import math

import cv2
import numpy as np
import pytest
from PIL import Image

from fer.align import eye_angle
from fer.paths import MODELS_DIR, PHOTOS_DIR
from fer.pose import (
    FOCAL_EYE_SPANS,
    MODEL_POINTS,
    POSE_POINTS,
    HeadPose,
    accuracy_by_angle,
    angles_text,
    euler_angles,
    face_poses,
    format_pose_report,
    head_pose,
    load_pose_table,
    main,
    select_by_yaw,
    yaw_caution,
)

needs_photos = pytest.mark.skipif(not PHOTOS_DIR.is_dir(), reason=f"sample photos not found at {PHOTOS_DIR}")


def projected_landmarks(yaw: float, pitch: float, roll: float, focal: float = 800.0) -> np.ndarray:
    """68 landmarks whose pose points are the generic head turned by the given angles (degrees)
    and seen by the camera the fit assumes (head centred on the optical axis, at the distance
    :data:`fer.pose.FOCAL_EYE_SPANS` eye spans); the other points sit at the head's centre
    (the fit ignores them)."""
    y, p, r = (math.radians(a) for a in (yaw, pitch, roll))
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    ry = np.array([[math.cos(-y), 0, math.sin(-y)], [0, 1, 0], [-math.sin(-y), 0, math.cos(-y)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    rotation = rz @ ry @ rx
    camera = np.array([[focal, 0, 320.0], [0, focal, 240.0], [0, 0, 1]])
    eye_span = np.linalg.norm(MODEL_POINTS[POSE_POINTS.index(45)] - MODEL_POINTS[POSE_POINTS.index(36)])
    shift = np.array([0.0, 0.0, FOCAL_EYE_SPANS * eye_span]) - rotation @ MODEL_POINTS.mean(axis=0)
    points, _ = cv2.projectPoints(MODEL_POINTS, cv2.Rodrigues(rotation)[0], shift, camera, None)
    landmarks = np.tile(points.reshape(-1, 2).mean(axis=0), (68, 1))
    landmarks[list(POSE_POINTS)] = points.reshape(-1, 2)
    return landmarks


@pytest.mark.parametrize("angles", [(0, 0, 0), (25, 0, 0), (-30, 10, 5), (10, -15, -20), (40, 5, 12)])
def test_the_fit_recovers_the_angles_of_a_projected_head(angles):
    pose = head_pose(projected_landmarks(*angles))
    assert (pose.yaw, pose.pitch, pose.roll) == pytest.approx(angles, abs=1.5)
    assert pose.error < 0.01


def test_sign_conventions_follow_the_image():
    # Turned right: the nose tip (the closest point) moves towards the image's right edge.
    turned = projected_landmarks(20, 0, 0)
    frontal = projected_landmarks(0, 0, 0)
    def nose_offset(points):
        return points[[31, 35], 0].mean() - points[[36, 45], 0].mean()

    assert nose_offset(turned) > nose_offset(frontal) + 1
    # Nodding down brings the nose towards the mouth corners; positive roll lowers the image-right eye.
    down = projected_landmarks(0, 20, 0)
    assert down[54, 1] - down[35, 1] < frontal[54, 1] - frontal[35, 1]
    tilted = projected_landmarks(0, 0, 15)
    assert tilted[45, 1] > tilted[36, 1] and eye_angle(tilted) > 0


def test_euler_angles_of_the_identity_are_zero():
    assert euler_angles(np.eye(3)) == pytest.approx((0.0, 0.0, 0.0))


def test_bad_landmarks_are_refused():
    with pytest.raises(ValueError, match="68, 2"):
        head_pose(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="degenerate"):
        head_pose(np.zeros((68, 2)))
    broken = projected_landmarks(0, 0, 0)
    broken[8] = np.nan
    with pytest.raises(ValueError, match="finite"):
        head_pose(broken)
    # Points on a line (the eye corners kept apart) are no head.
    line = np.stack([np.linspace(100, 200, 68), np.full(68, 150.0)], axis=1)
    with pytest.raises(ValueError, match="does not fit"):
        head_pose(line)


def test_describe_and_to_dict():
    pose = HeadPose(yaw=-12.4, pitch=5.0, roll=3.2, error=0.05)
    assert pose.describe() == "turned 12° to the image's left, 5° down, tilted 3° clockwise"
    assert HeadPose(0.4, -0.3, -7.6, 0.0).describe() == "facing the camera, level, tilted 8° anticlockwise"
    assert angles_text(21.2, -0.4, -13.0) == "yaw +21° pitch +0° roll -13°"
    assert pose.to_dict() == {"yaw": -12.4, "pitch": 5.0, "roll": 3.2, "error": 0.05}


@pytest.fixture(scope="module")
def photo_poses():
    """Each sample photo's faces as (left edge, pose), for the photo and its mirror image."""
    from fer.pipeline import FerPipeline

    pipeline = FerPipeline(detector="hog")
    found = {}
    for name in ("deepface_couple.jpg", "fr_obama2.jpg", "isf_right_wryneck.png", "dlib_2008_002079.jpg"):
        image = Image.open(PHOTOS_DIR / name).convert("RGB")
        image.thumbnail((1200, 1200))
        for mirrored in (False, True):
            shown = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if mirrored else image
            buffer = io.BytesIO()
            shown.save(buffer, format="PNG")
            faces = pipeline.analyze_bytes(buffer.getvalue()).faces
            width = shown.size[0]
            # Left edges in the unmirrored photo's pixels, so a face can be matched with its mirror.
            found[name, mirrored] = sorted(
                ((width - f.box[0] - f.box[2]) if mirrored else f.box[0], f.pose, f.landmarks, f.box[2])
                for f in faces)
    return found


@needs_photos
def test_mirrored_photos_mirror_the_pose(photo_poses):
    for name in {n for n, _ in photo_poses}:
        plain, mirrored = photo_poses[name, False], photo_poses[name, True]
        assert len(plain) == len(mirrored) > 0
        for (left, pose, _, side), (left_m, pose_m, _, _) in zip(plain, mirrored, strict=True):
            assert abs(left - left_m) < 0.1 * 1200
            # dlib's landmarks on faces of ~40-55 px are not mirror-exact: their pose moves more.
            big = side >= 80
            assert pose.yaw == pytest.approx(-pose_m.yaw, abs=8 if big else 15), name
            assert pose.roll == pytest.approx(-pose_m.roll, abs=5 if big else 8), name


@needs_photos
def test_roll_agrees_with_the_eye_line_and_the_hand_notes(photo_poses):
    for (name, _), faces in photo_poses.items():
        for _, pose, landmarks, _ in faces:
            assert pose.roll == pytest.approx(eye_angle(landmarks), abs=5), name
    # The manifest: "head rolled ~25 deg" (the fit sees ~40 degrees of eye-line tilt), and a
    # couple both turned towards the image's right.
    (_, wryneck, _, _), = photo_poses["isf_right_wryneck.png", False]
    assert 25 <= abs(wryneck.roll) <= 50
    assert all(pose.yaw > 10 for _, pose, _, _ in photo_poses["deepface_couple.jpg", False])


def test_accuracy_by_angle_bins_and_standardises_by_class():
    angles = np.array([0, 5, -8, 15, -25, 40, -50, 35])
    labels = np.array([0, 1, 0, 1, 0, 1, 1, 0])
    correct = np.array([1, 1, 1, 0, 1, 0, 1, 0], bool)
    rows = accuracy_by_angle(angles, correct, labels, (0, 10, 20, 30, 180))
    assert [r["bin"] for r in rows] == ["0-10°", "10-20°", "20-30°", "30°+"]
    assert [r["faces"] for r in rows] == [3, 1, 1, 3]
    assert rows[0]["accuracy"] == 1.0 and rows[3]["accuracy"] == pytest.approx(1 / 3, abs=1e-4)
    # 30°+ holds class 1 (1 of 2 right) and class 0 (0 of 1); the mix is half and half.
    assert rows[3]["accuracy_class_mix"] == pytest.approx(0.25)
    # One class only in the bin: its accuracy, whatever the mix.
    assert rows[1]["accuracy_class_mix"] == 0.0 and rows[2]["accuracy_class_mix"] == 1.0
    # Beyond the last edge still counts in the last bin; a face without a pose (NaN) in none.
    rows = accuracy_by_angle(np.array([180.0, 200.0, np.nan]), np.ones(3, bool), np.zeros(3), (0, 10, 180))
    assert [r["faces"] for r in rows] == [0, 2]


def report_with(accuracies: list[float]) -> dict:
    rows = [{"bin": b, "faces": 10, "share": 0.25, "accuracy": a, "accuracy_class_mix": a}
            for b, a in zip(["0-10°", "10-20°", "20-30°", "30°+"], accuracies, strict=True)]
    return {"tta": True, "PublicTest": {"yaw_bins": [0, 10, 20, 30, 180], "yaw": rows}}


def test_yaw_caution_only_where_the_card_shows_a_drop():
    report = report_with([0.74, 0.71, 0.66, 0.61])
    assert yaw_caution(5, report) is None
    assert yaw_caution(-15, report) is None  # 3 points: under the 5-point bar
    caution = yaw_caution(-34, report)
    assert caution.startswith("Turned 34°: on PublicTest faces turned 30°+ this model is right with flip TTA 61%")
    assert "against 74% within 10°" in caution
    assert yaw_caution(34, None) is None and yaw_caution(34, {}) is None
    assert yaw_caution(29.6, report).startswith("Turned 29°: on PublicTest faces turned 20-30°")


def test_report_writes_the_table_into_the_card(tmp_path, tmp_path_factory):
    from app_support import own_model_folder

    folder = own_model_folder(tmp_path, tmp_path_factory)
    model = folder / "tiny.h5"
    assert main(["report", "--model", str(model), "--update-card"]) == 0
    report = json.loads((folder / "tiny.json").read_text())["pose_accuracy"]
    assert report["tta"] is False and report["command"].startswith("python -m fer.pose report --model")
    for split in ("PublicTest", "PrivateTest"):
        assert report[split]["faces"] == 3589 and sum(r["faces"] for r in report[split]["yaw"]) == 3589
    with pytest.raises(SystemExit):
        main(["report", "--model", str(model), "--tta"])  # no flip-TTA predictions beside the tiny model
    with pytest.raises(SystemExit):
        main(["report", "--model", str(model), "--split", "PublicTest", "--update-card"])


def test_report_runs_the_model_on_one_split_only(tmp_path, tmp_path_factory, capsys):
    from app_support import own_model_folder

    model = own_model_folder(tmp_path, tmp_path_factory) / "tiny.h5"
    capsys.readouterr()
    assert main(["report", "--model", str(model), "--split", "PublicTest", "--tta", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tta"] is True and "PrivateTest" not in report
    assert report["PublicTest"]["faces"] == 3589 and sum(r["faces"] for r in report["PublicTest"]["yaw"]) == 3589
    assert main(["report", "--model", str(model), "--split", "PublicTest", "--tta"]) == 0
    out = capsys.readouterr().out
    assert out == format_pose_report(report, "tiny.h5") + "\n"
    assert out.startswith("tiny.h5, flip TTA: accuracy by absolute head angle") and "PrivateTest" not in out


def test_report_reads_as_a_table():
    row = {"bin": "0-10°", "faces": 1777, "share": 0.4951, "accuracy": 0.7445, "stderr": 0.0103,
           "accuracy_class_mix": 0.7299}
    empty = {"bin": "30°+", "faces": 0, "share": 0.0, "accuracy": None, "stderr": None, "accuracy_class_mix": None}
    report = {"tta": False, "focal_eye_spans": 6.0,
              "PrivateTest": {"faces": 1777, "accuracy": 0.7445, "yaw": [row, empty], "pitch": [row, empty]}}
    lines = format_pose_report(report, "m.h5").splitlines()
    assert lines[0] == "m.h5: accuracy by absolute head angle (fitted with a focal length of 6 eye spans)"
    assert lines[2] == "PrivateTest: 1,777 faces, accuracy 74.45%"
    assert lines[3].split() == ["|yaw|", "faces", "share", "accuracy", "±", "s.e.", "at", "class", "mix"]
    assert lines[4].split() == ["0-10°", "1,777", "49.5%", "74.45%", "1.03%", "72.99%"]
    assert lines[5].split() == ["30°+", "0", "0.0%", "-", "-", "-"]
    assert lines[6].startswith("  |pitch|")


def test_embedded_table_matches_a_fresh_fit():
    from fer.testset import load_test_faces

    faces = load_test_faces()
    table = load_pose_table()
    assert len(table) == len(faces.rows) and set(table.index) == set(faces.rows.tolist())
    picked = np.random.default_rng(0).choice(len(faces.rows), 40, replace=False)
    fresh = face_poses(faces.images[picked])
    stored = table.loc[faces.rows[picked]]
    assert np.allclose(stored["yaw"], [p.yaw for p in fresh], atol=0.06)
    assert np.allclose(stored["roll"], [p.roll for p in fresh], atol=0.06)


def test_pose_table_refuses_a_row_twice(tmp_path):
    path = tmp_path / "poses.csv"
    path.write_text("row,yaw,pitch,roll\n1,5.0,0.0,0.0\n1,6.0,0.0,0.0\n")
    with pytest.raises(ValueError, match="row 1 appears twice"):
        load_pose_table(path)
    path.write_text("row,yaw\n1,5.0\n")
    with pytest.raises(ValueError, match="expected columns"):
        load_pose_table(path)


def test_select_by_yaw_and_its_errors():
    import pandas as pd

    poses = pd.DataFrame({"row": [1, 2, 3, 4], "yaw": [5.0, -12.0, -25.0, 40.0], "pitch": 0.0, "roll": 0.0})
    poses = poses.set_index("row")
    table = pd.DataFrame({"row": [4, 3, 2, 1], "pred": [0, 1, 2, 3]})
    assert select_by_yaw(table, poses, "any") is table
    assert select_by_yaw(table, poses, "frontal")["row"].tolist() == [1]
    assert select_by_yaw(table, poses, "turned")["row"].tolist() == [4, 3]
    with pytest.raises(ValueError, match="unknown subset"):
        select_by_yaw(table, poses, "sideways")
    with pytest.raises(KeyError, match="1 rows have no head pose"):
        select_by_yaw(pd.DataFrame({"row": [9]}), poses, "turned")


@pytest.mark.skipif(not (MODELS_DIR / "fer_best.json").is_file(), reason="no released model")
def test_released_card_shows_turned_faces_are_harder():
    report = json.loads((MODELS_DIR / "fer_best.json").read_text())["pose_accuracy"]
    for split in ("PublicTest", "PrivateTest"):
        yaw = report[split]["yaw"]
        assert sum(r["faces"] for r in yaw) == 3589
        assert yaw[0]["accuracy_class_mix"] - yaw[-1]["accuracy_class_mix"] > 0.05


def test_report_says_what_is_wrong_with_the_model(tmp_path, capsys):
    assert main(["report", "--model", str(tmp_path / "nope.h5"), "--split", "PublicTest"]) == 2
    assert "error: model not found" in capsys.readouterr().err
    (tmp_path / "junk.h5").write_text("junk\n")
    (tmp_path / "junk.json").write_text("{}")
    assert main(["report", "--model", str(tmp_path / "junk.h5"), "--split", "PublicTest"]) == 2
    assert "junk.h5 is not a saved Keras model" in capsys.readouterr().err
    (tmp_path / "junk.predictions.csv").write_text("")
    assert main(["report", "--model", str(tmp_path / "junk.h5")]) == 2
    assert "error: " in capsys.readouterr().err


def test_build_makes_the_output_folder_before_the_fits(tmp_path, monkeypatch):
    import fer.pose

    def no_fit(gray_faces):
        assert (tmp_path / "po").is_dir(), "the folder must exist before the fits"
        return [None] * len(gray_faces)

    monkeypatch.setattr(fer.pose, "face_poses", no_fit)
    out = tmp_path / "po" / "poses.csv"
    assert main(["build", "--out", str(out)]) == 0
    assert load_pose_table(out)["yaw"].isna().all()
