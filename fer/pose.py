"""Head pose (yaw, pitch, roll) from dlib's 68 landmarks, and how accuracy varies with it.

FER2013's faces are mostly frontal, so a classifier trained on them is on less certain ground
with a turned head. :func:`head_pose` fits a generic 3D head (14 points of an anthropometric
model, as in lincolnhard's ``head-pose-estimation``) to a face's 2D landmarks with OpenCV's
``solvePnP``. The camera is not known, so it is assumed: a focal length of
:data:`FOCAL_EYE_SPANS` outer-eye spans (a face at arm's length) and the principal point at the
landmarks' centre. Yaw and pitch from one generic head are rough (a few degrees, more for
unusual faces); roll is as exact as the eye corners.

The same function serves photos (landmarks in photo pixels) and FER2013's 48x48 faces, so
:func:`main` can measure a model's accuracy by head pose on the test splits, which the app uses
to say when a face is turned as far as the test faces it is measurably worse on, and to filter
the test faces by pose.

``python -m fer.pose build`` (the embedded per-face table, ``fer/assets/fer2013_test_poses.csv``),
``python -m fer.pose report --model models/fer_best.h5 [--tta] [--update-card]``
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer.cli import HelpFormatter, argument_parser, command_line, quiet_tensorflow

# Landmark index -> generic head point, in a camera-like frame: x to the image's right, y down,
# z away from the camera (units: cm). The anthropometric model's axes point the other way on
# all three; negating them keeps the same physical head.
_MODEL_3D: dict[int, tuple[float, float, float]] = {
    17: (-6.825897, -6.760612, -4.402142),  # brow, outer end (image left)
    21: (-1.330353, -7.122144, -6.903745),  # brow, inner end
    22: (1.330353, -7.122144, -6.903745),
    26: (6.825897, -6.760612, -4.402142),
    36: (-5.311432, -5.485328, -3.987654),  # eye corners
    39: (-1.789930, -5.393625, -4.413414),
    42: (1.789930, -5.393625, -4.413414),
    45: (5.311432, -5.485328, -3.987654),
    31: (-2.005628, -1.409845, -6.165652),  # nostril wings
    35: (2.005628, -1.409845, -6.165652),
    48: (-2.774015, 2.080775, -5.048531),  # mouth corners
    54: (2.774015, 2.080775, -5.048531),
    57: (0.0, 3.116408, -6.097667),  # lower lip
    8: (0.0, 7.415691, -4.070434),  # chin
}
POSE_POINTS: tuple[int, ...] = tuple(_MODEL_3D)
MODEL_POINTS: np.ndarray = np.array([_MODEL_3D[i] for i in POSE_POINTS], dtype=np.float64)
# Distance to the face over its outer-eye span, as a focal length in those spans: ~60 cm over
# the model's ~10.6 cm. Yaw and pitch move by ~1-2 degrees between 3 and 12.
FOCAL_EYE_SPANS: float = 6.0
# Largest projection error (RMS, in outer-eye spans) of a fit that is reported: real faces fit to
# 0.04-0.10 (sample photos); collinear or scrambled points give over 1.
MAX_FIT_ERROR: float = 0.3
# Absolute yaw and pitch bins of the accuracy-by-pose table (the last bin has no upper end).
YAW_BINS: tuple[float, ...] = (0.0, 10.0, 20.0, 30.0, 180.0)
PITCH_BINS: tuple[float, ...] = (0.0, 10.0, 20.0, 30.0, 180.0)


@dataclass(frozen=True)
class HeadPose:
    """A head's rotation from facing the camera, in degrees.

    Attributes:
        yaw: turn about the vertical axis; positive when the face turns towards the image's
            right edge (the person's left).
        pitch: nod; positive when the face tilts down (chin towards the chest).
        roll: tilt in the image plane; positive clockwise as seen in the image (the image-right
            eye lower), the sign of ``fer.align.eye_angle``.
        error: root-mean-square distance, in outer-eye spans, between the landmarks and the
            fitted head's projection (large when the generic head fits badly).
    """

    yaw: float
    pitch: float
    roll: float
    error: float

    def to_dict(self) -> dict[str, float]:
        """The angles (and fit error) rounded for JSON."""
        return {"yaw": round(self.yaw, 1), "pitch": round(self.pitch, 1), "roll": round(self.roll, 1),
                "error": round(self.error, 3)}

    def describe(self) -> str:
        """One line for people, e.g. ``turned 12° to the image's right, 5° down, tilted 3° clockwise``; an angle
        that rounds to 0° reads ``facing the camera``, ``level`` or ``upright``.
        """
        def part(angle: float, positive: str, negative: str, zero: str) -> str:
            degrees = round(abs(angle))
            return zero if degrees == 0 else positive.format(degrees) if angle > 0 else negative.format(degrees)

        return ", ".join((part(self.yaw, "turned {}° to the image's right", "turned {}° to the image's left",
                               "facing the camera"),
                          part(self.pitch, "{}° down", "{}° up", "level"),
                          part(self.roll, "tilted {}° clockwise", "tilted {}° anticlockwise", "upright")))


def signed_degrees(angle: float) -> str:
    """``+21°``, ``-3°``, ``+0°`` (never ``-0°``)."""
    return f"{round(angle):+d}°"


def angles_text(yaw: float, pitch: float, roll: float) -> str:
    """``yaw +21° pitch +6° roll -13°``."""
    return f"yaw {signed_degrees(yaw)} pitch {signed_degrees(pitch)} roll {signed_degrees(roll)}"


def euler_angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """Returns (yaw, pitch, roll) in degrees, in :class:`HeadPose`'s conventions, of a rotation
    matrix taking head coordinates to camera coordinates (``R = Rz(roll) Ry(-yaw) Rx(pitch)``).
    """
    r = np.asarray(rotation, dtype=np.float64)
    pitch = math.degrees(math.atan2(r[2, 1], r[2, 2]))
    yaw = -math.degrees(math.atan2(-r[2, 0], math.hypot(r[2, 1], r[2, 2])))
    roll = math.degrees(math.atan2(r[1, 0], r[0, 0]))
    return yaw, pitch, roll


def head_pose(landmarks: np.ndarray) -> HeadPose:
    """Fits the generic head to a face's 68 landmarks.

    Args:
        landmarks: (68, 2) pixel coordinates, in any image (photo or 48x48 face).

    Returns:
        The head's :class:`HeadPose`.

    Raises:
        ValueError: for a landmark array of another shape, non-finite or degenerate points
            (the outer eye corners together), a fit that fails, or landmarks the generic head
            does not fit (projection error over :data:`MAX_FIT_ERROR` eye spans): no pose.
    """
    import cv2

    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got shape {points.shape}")
    image_points = points[list(POSE_POINTS)]
    if not np.isfinite(image_points).all():
        raise ValueError("the landmarks are not all finite")
    span = float(np.linalg.norm(points[45] - points[36]))
    if span < 1e-6:
        raise ValueError("the landmarks are degenerate (the outer eye corners coincide)")
    focal = FOCAL_EYE_SPANS * span
    centre = image_points.mean(axis=0)
    camera = np.array([[focal, 0.0, centre[0]], [0.0, focal, centre[1]], [0.0, 0.0, 1.0]])
    # Start facing the camera at the distance the eye span implies: the iterative solver then
    # stays on the physical side of the two mirror-image solutions.
    model_span = float(np.linalg.norm(MODEL_POINTS[POSE_POINTS.index(45)] - MODEL_POINTS[POSE_POINTS.index(36)]))
    rvec0 = np.zeros((3, 1))
    tvec0 = np.array([[0.0], [0.0], [FOCAL_EYE_SPANS * model_span]])
    try:
        ok, rvec, tvec = cv2.solvePnP(MODEL_POINTS, image_points, camera, None, rvec0, tvec0,
                                      useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
        rotation, _ = cv2.Rodrigues(rvec)
        projected, _ = cv2.projectPoints(MODEL_POINTS, rvec, tvec, camera, None)
    except cv2.error as err:
        raise ValueError(f"the head-pose fit failed: {err}") from None
    if not ok:
        raise ValueError("the head-pose fit did not converge")
    error = float(np.sqrt(np.mean(np.sum((projected.reshape(-1, 2) - image_points) ** 2, axis=1)))) / span
    yaw, pitch, roll = euler_angles(rotation)
    if not all(math.isfinite(v) for v in (yaw, pitch, roll, error)):
        raise ValueError("the head-pose fit gave no finite angles")
    if error > MAX_FIT_ERROR:
        raise ValueError(f"the generic head does not fit these landmarks (error {error:.2f} eye spans)")
    return HeadPose(yaw=yaw, pitch=pitch, roll=roll, error=error)


def pose_or_none(landmarks: np.ndarray) -> HeadPose | None:
    """:func:`head_pose`, or ``None`` for landmarks the generic head cannot be fitted to."""
    try:
        return head_pose(landmarks)
    except ValueError:
        return None


def wrap_degrees(angle: float) -> float:
    """An angle in degrees, brought into [-180, 180)."""
    return (angle + 180.0) % 360.0 - 180.0


def unturned_pose(pose: HeadPose | None, angle: float) -> HeadPose | None:
    """A pose fitted in a copy of a photo turned ``angle`` degrees anticlockwise, in the photo's terms.

    The fit starts from an upright head, so a face that is upside down in the photo is fitted
    where it stands upright (``fer.detect.search_turned``'s copy) and only its roll is carried
    back: turning the image anticlockwise rolls the head anticlockwise (negative roll). Yaw and
    pitch stay as fitted there, about the head's own axes.
    """
    if pose is None:
        return None
    return HeadPose(pose.yaw, pose.pitch, wrap_degrees(pose.roll + angle), pose.error)


def angle_bins(magnitudes: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """The bin of each absolute angle: ``i`` for ``edges[i] <= m < edges[i + 1]``, the last bin
    open-ended (everything from its lower edge on), -1 below the first edge or for NaN.
    """
    magnitudes = np.asarray(magnitudes, dtype=np.float64)
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), magnitudes, side="right") - 1
    index = np.minimum(index, len(edges) - 2)
    return np.where(np.isfinite(magnitudes), index, -1)


def bin_label(edges: Sequence[float], index: int) -> str:
    """``0-10°``, ..., ``30°+`` for bin ``index`` of absolute-angle ``edges``."""
    low, high = edges[index], edges[index + 1]
    return f"{low:.0f}°+" if index == len(edges) - 2 else f"{low:.0f}-{high:.0f}°"


def accuracy_by_angle(angles: np.ndarray, correct: np.ndarray, labels: np.ndarray,
                      edges: Sequence[float]) -> list[dict[str, object]]:
    """Accuracy of faces grouped by absolute angle.

    Turned heads are not a random sample: in FER2013 sad faces are turned more often than happy
    ones, and the model's accuracy differs by class. So each bin also gets its accuracy
    standardised to the whole set's class mix (each class's accuracy in the bin, weighted by
    that class's share of all faces; classes absent from the bin are left out and the weights
    renormalised), which separates the effect of the pose from that of the mix.

    Args:
        angles: degrees, one per face.
        correct: bool, one per face.
        labels: true class index, one per face.
        edges: increasing bin edges of ``|angle|``, from 0.

    Returns:
        One row per bin: ``bin`` (label), ``faces``, ``share`` (of all faces), ``accuracy``,
        ``stderr`` (its binomial standard error) and ``accuracy_class_mix``; the accuracies are
        None for an empty bin.
    """
    magnitude = np.abs(np.asarray(angles, dtype=np.float64))
    correct = np.asarray(correct, dtype=bool)
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    mix = counts / max(1, len(labels))
    bins = angle_bins(magnitude, edges)  # NaN, a face without a pose, falls in no bin
    rows = []
    for i in range(len(edges) - 1):
        inside = bins == i
        n = int(inside.sum())
        acc = float(correct[inside].mean()) if n else None
        standardised = None
        if n:
            per_class = [(w, correct[inside & (labels == c)]) for c, w in zip(classes, mix, strict=True)]
            present = [(w, hits.mean()) for w, hits in per_class if len(hits)]
            standardised = sum(w * a for w, a in present) / sum(w for w, _ in present)
        rows.append({
            "bin": bin_label(edges, i), "faces": n, "share": round(n / max(1, len(magnitude)), 4),
            "accuracy": None if acc is None else round(acc, 4),
            "stderr": None if acc is None else round(math.sqrt(acc * (1 - acc) / n), 4),
            "accuracy_class_mix": None if standardised is None else round(float(standardised), 4),
        })
    return rows


def yaw_caution(yaw: float, report: dict[str, object] | None, split: str = "PublicTest",
                min_drop: float = 0.05) -> str | None:
    """A warning for a face turned as far as the faces its model is measurably worse on.

    Args:
        yaw: the face's yaw in degrees.
        report: a model card's ``pose_accuracy`` (from :func:`main`), or None.
        split: the split whose table is read (the validation split by default).
        min_drop: warn when the face's yaw bin is at least this much less accurate than the
            most frontal bin, at the split's class mix.

    Returns:
        One sentence naming both accuracies, or None (no table, or no measurable drop).
    """
    table = (report or {}).get(split)
    if not table:
        return None
    edges, rows = table["yaw_bins"], table["yaw"]
    index = int(angle_bins(np.array([abs(yaw)]), edges)[0])
    if index <= 0:
        return None
    frontal, here = rows[0]["accuracy_class_mix"], rows[index]["accuracy_class_mix"]
    if frontal is None or here is None or frontal - here < min_drop:
        return None
    views = " with flip TTA" if report.get("tta") else ""
    return (f"Turned {int(abs(yaw))}°: on {split} faces turned {rows[index]['bin']} this model is right{views} "
            f"{here:.0%} of the time, against {frontal:.0%} within {edges[1]:.0f}° (both at the split's class mix).")


def face_poses(gray_faces: np.ndarray) -> list[HeadPose | None]:
    """Head poses of FER-style 48x48 faces, through the landmarks the landmark experiments use
    (None for a face whose landmarks the generic head does not fit).
    """
    from fer.landmark_features import face_landmark_features

    return [pose_or_none(face_landmark_features(face).reshape(68, 2) * face.shape[0]) for face in gray_faces]


POSE_COLUMNS: tuple[str, ...] = ("row", "yaw", "pitch", "roll")
# Faces with |yaw| under the first edge are frontal; from the third edge on, turned.
YAW_SUBSETS: dict[str, str] = {"any": "any", "frontal": "frontal (|yaw| < 10°)", "turned": "turned (|yaw| ≥ 20°)"}


def build_pose_table(path: Path | None = None) -> Path:
    """Writes the head pose of every embedded test face (one CSV row per FER2013 row).

    The embedded faces are model-independent, so one table serves every model's predictions.
    """
    import pandas as pd

    from fer.paths import TEST_POSES_PATH
    from fer.testset import load_test_faces

    path = Path(path or TEST_POSES_PATH)
    path.parent.mkdir(parents=True, exist_ok=True)  # now, not after the fits
    faces = load_test_faces()
    poses = face_poses(faces.images)

    def column(name: str) -> list[float]:
        return [float("nan") if p is None else round(getattr(p, name), 1) for p in poses]

    pd.DataFrame({"row": faces.rows, "yaw": column("yaw"), "pitch": column("pitch"), "roll": column("roll")}
                 ).to_csv(path, index=False)
    return path


def load_pose_table(path: Path | None = None):
    """Reads the embedded per-face head poses as a DataFrame indexed by FER2013 row (NaN angles:
    a face without a pose).

    Raises:
        FileNotFoundError: naming the command that builds it.
        ValueError: for a table without the expected columns, or with a row twice.
    """
    import pandas as pd

    from fer.paths import TEST_POSES_PATH

    path = Path(path or TEST_POSES_PATH)
    if not path.is_file():
        raise FileNotFoundError(f"head poses of the test faces not found: {path}; run `python -m fer.pose build`")
    table = pd.read_csv(path)
    if tuple(table.columns) != POSE_COLUMNS:
        raise ValueError(f"{path}: expected columns {', '.join(POSE_COLUMNS)}, got {', '.join(table.columns)}")
    if table["row"].duplicated().any():
        raise ValueError(f"{path}: row {int(table['row'][table['row'].duplicated()].iloc[0])} appears twice")
    return table.set_index("row")


def poses_of(poses, rows: np.ndarray):
    """The pose table's lines for these FER2013 rows, in their order.

    Raises:
        KeyError: naming rows the pose table does not cover.
    """
    missing = np.setdiff1d(rows, poses.index.to_numpy())
    if len(missing):
        raise KeyError(f"{len(missing)} rows have no head pose (first: {int(missing[0])})")
    return poses.loc[rows]


def select_by_yaw(table, poses, subset: str):
    """The rows of a per-face table (with a FER2013 ``row`` column) in one :data:`YAW_SUBSETS`.

    Args:
        table: per-face rows, e.g. a model's predictions.
        poses: :func:`load_pose_table`.
        subset: ``any``, ``frontal`` (|yaw| under 10 degrees) or ``turned`` (20 degrees or more).

    Raises:
        ValueError: for an unknown subset.
        KeyError: naming rows the pose table does not cover.
    """
    if subset not in YAW_SUBSETS:
        raise ValueError(f"unknown subset {subset!r}; expected one of {', '.join(YAW_SUBSETS)}")
    if subset == "any":
        return table
    yaw = np.abs(poses_of(poses, table["row"].to_numpy())["yaw"].to_numpy())
    keep = yaw < YAW_BINS[1] if subset == "frontal" else yaw >= YAW_BINS[2]
    return table[keep]


def _percent(share: float | None, digits: int = 2) -> str:
    return "-" if share is None else f"{share:.{digits}%}"


def format_pose_report(report: dict, model_name: str) -> str:
    """A pose report (as ``report`` stores it in the card) as text: per split, its accuracy, then
    one table per angle with each bin's faces, share of the split, accuracy, its standard error
    and the accuracy at the split's class mix (see :func:`accuracy_by_angle`).
    """
    views = ", flip TTA" if report.get("tta") else ""
    lines = [f"{model_name}{views}: accuracy by absolute head angle (fitted with a focal length of "
             f"{report['focal_eye_spans']:g} eye spans)"]
    for split in ("PublicTest", "PrivateTest"):
        if split not in report:
            continue
        part = report[split]
        lines += ["", f"{split}: {part['faces']:,} faces, accuracy {_percent(part['accuracy'])}"]
        for angle in ("yaw", "pitch"):
            lines.append(f"  {'|' + angle + '|':<8} {'faces':>6} {'share':>6} {'accuracy':>9} {'± s.e.':>7} "
                         f"{'at class mix':>12}")
            lines += [f"  {row['bin']:<8} {row['faces']:>6,} {_percent(row['share'], 1):>6} "
                      f"{_percent(row['accuracy']):>9} {_percent(row['stderr']):>7} "
                      f"{_percent(row['accuracy_class_mix']):>12}" for row in part[angle]]
    lines += ["", "at class mix: each emotion's accuracy in the bin weighted by its share of the whole split"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI: ``build`` the embedded per-face pose table; ``report`` a model's accuracy by pose."""
    import pandas as pd

    from fer.evaluate import predictions_path
    from fer.metadata import read_metadata, write_metadata

    parser = argument_parser("python -m fer.pose", __doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="head poses of the embedded test faces (about 45 s)",
                                formatter_class=HelpFormatter)
    build.add_argument("--out", default=None, help="default: fer/assets/fer2013_test_poses.csv")
    report_cmd = commands.add_parser("report", help="a model's test accuracy by head pose",
                                     formatter_class=HelpFormatter)
    report_cmd.add_argument("--model", required=True, help="released model .h5 with predictions beside it")
    report_cmd.add_argument("--tta", action="store_true", help="use its flip-TTA predictions")
    report_cmd.add_argument("--update-card", action="store_true", help="write the table into the model's card")
    report_cmd.add_argument("--json", action="store_true", help="print the report as JSON, as the card stores it")
    report_cmd.add_argument("--split", action="append", choices=("PublicTest", "PrivateTest"),
                            help="run the model on this split now instead of reading its saved predictions "
                                 "(repeatable); `--split PublicTest` compares candidates without the test split")
    args = parser.parse_args(argv)
    quiet_tensorflow()

    if args.command == "build":
        try:
            print(build_pose_table(args.out))
        except OSError as err:  # no embedded faces, or a folder that cannot be made
            print(f"error: {err}", file=sys.stderr)
            return 2
        return 0
    model = Path(args.model)
    splits = tuple(dict.fromkeys(args.split or ()))
    if splits and args.update_card:
        parser.error("--update-card takes the saved predictions of both splits, not --split")
    try:
        if splits:
            from fer.evaluate import evaluate_model

            frame = evaluate_model(model, tta=args.tta, splits=splits).predictions
        else:
            predictions = predictions_path(model, args.tta)
            if not predictions.is_file():
                parser.error(f"{predictions} is missing: run python -m fer.evaluate --model {model}"
                             + (" --tta" if args.tta else ""))
            frame = pd.read_csv(predictions)
    except (FileNotFoundError, ValueError) as err:  # pandas' EmptyDataError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        poses = load_pose_table()
    except (FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    try:
        angles_of_rows = poses_of(poses, frame["row"].to_numpy())
    except KeyError as err:
        parser.error(f"{err.args[0]}; rebuild with `python -m fer.pose build`")
    command = command_line("fer.pose", argv)
    report: dict[str, object] = {"tta": bool(args.tta), "focal_eye_spans": FOCAL_EYE_SPANS, "command": command}
    for split in splits or ("PublicTest", "PrivateTest"):
        chosen = (frame["split"] == split).to_numpy()
        part, angles = frame[chosen], angles_of_rows[chosen]
        correct = (part["true"] == part["pred"]).to_numpy()
        labels = part["true"].to_numpy()
        report[split] = {
            "faces": len(part), "accuracy": round(float(correct.mean()), 4) if len(part) else None,
            "yaw_bins": list(YAW_BINS), "pitch_bins": list(PITCH_BINS),
            "yaw": accuracy_by_angle(angles["yaw"].to_numpy(), correct, labels, YAW_BINS),
            "pitch": accuracy_by_angle(angles["pitch"].to_numpy(), correct, labels, PITCH_BINS),
        }
    print(json.dumps(report, indent=2) if args.json else format_pose_report(report, model.name))
    if args.update_card:
        card = read_metadata(model)
        card["pose_accuracy"] = report
        write_metadata(model, card)
    return 0


if __name__ == "__main__":
    sys.exit(main())
