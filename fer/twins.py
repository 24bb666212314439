"""Test faces that also appear in Training: near-duplicates across FER2013's splits.

FER2013 was gathered by image search, so one photograph often appears more than once, cropped,
scaled or compressed a little differently, and sometimes in different splits. A test face whose
"twin" is in Training measures memory rather than generalisation. This module finds, for every
PublicTest and PrivateTest face, its most similar Training face, and reports accuracy with and
without such faces.

Matching runs in two steps. Candidates: the three Training faces whose zero-mean 16x16
thumbnails have the highest cosine with the face or its mirror image (a matrix product; seconds
for all 7,178 test faces). Verification: :func:`patch_similarity`, the best normalised
cross-correlation of the face's central 32x32 pixels anywhere in the candidate at nine scales (0.88-1.12),
which tolerates the crop shifts between two copies of one photograph but not a different person
in the same pose (thumbnails alone confuse those from about 0.9 down). Pixel-identical twins are
found by hashing (this also catches blank images). :data:`TWIN_THRESHOLD` was chosen by looking
at sampled pairs per band of similarity (``python -m fer.twins build --mosaic F``).

``python -m fer.twins build`` writes :data:`fer.paths.TEST_TWINS_PATH` (one line per test
face), which the app and ``fer.evaluate`` read, so a clone without the full CSV still knows
which test faces have a Training twin.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fer.data import FerDataset
from fer.labels import EMOTIONS, EVAL_SPLITS
from fer.metrics import compute_metrics
from fer.paths import MODELS_DIR, TEST_TWINS_PATH

TWIN_THRESHOLD: float = 0.93
DESCRIPTOR_SIZE: int = 16
# A thumbnail whose grey levels vary less than this (standard deviation) is blank: it has no
# direction to compare, so only a pixel-identical match counts for it.
_BLANK_STD: float = 1.0
TWIN_COLUMNS: tuple[str, ...] = ("row", "split", "label", "twin_row", "twin_label", "similarity", "mirrored",
                                 "identical")


def descriptors(gray_faces: np.ndarray, size: int = DESCRIPTOR_SIZE) -> np.ndarray:
    """Zero-mean, unit-length thumbnails of faces (blank faces give a zero vector).

    Args:
        gray_faces: uint8 (N, H, W) with H and W multiples of ``size``.
        size: thumbnail side; pixels are averaged over square blocks.

    Returns:
        float32 (N, size * size).
    """
    faces = np.asarray(gray_faces, dtype=np.float32)
    if faces.ndim != 3 or faces.shape[1] % size or faces.shape[2] % size:
        raise ValueError(f"expected faces (N, H, W) with H and W multiples of {size}; got {faces.shape}")
    n, h, w = faces.shape
    thumbs = faces.reshape(n, size, h // size, size, w // size).mean(axis=(2, 4)).reshape(n, -1)
    thumbs -= thumbs.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(thumbs, axis=1, keepdims=True)
    blank = norms[:, 0] < _BLANK_STD * np.sqrt(size * size)
    thumbs /= np.where(blank[:, None], 1.0, norms)
    thumbs[blank] = 0.0
    return thumbs


def mirrored(descriptor: np.ndarray, size: int = DESCRIPTOR_SIZE) -> np.ndarray:
    """The descriptors of the mirror images (a thumbnail's columns reversed).

    Args:
        descriptor: (N, size * size) from :func:`descriptors`.
        size: the thumbnail side they were made with.

    Returns:
        (N, size * size), row i the descriptor of face i's mirror image.
    """
    return descriptor.reshape(len(descriptor), size, size)[:, :, ::-1].reshape(len(descriptor), -1)


@dataclass(frozen=True)
class Candidates:
    """The ``k`` most similar reference faces of each query face, by thumbnail.

    Attributes:
        index: (N, k) positions in the reference set, most similar first.
        similarity: (N, k) their thumbnail cosine similarities.
        mirrored: (N, k) whether the match is with the query's mirror image.
    """

    index: np.ndarray
    similarity: np.ndarray
    mirrored: np.ndarray


def candidates(query: np.ndarray, reference: np.ndarray, k: int = 3, block: int = 512) -> Candidates:
    """For each query descriptor, its ``k`` most similar reference descriptors, mirror images included.

    Args:
        query: (N, D) descriptors from :func:`descriptors`.
        reference: (M, D) descriptors.
        k: candidates kept per query face.
        block: query rows per matrix product (bounds memory at ``2 * block * M`` floats).
    """
    m = len(reference)
    if m == 0:
        raise ValueError("no reference faces to compare with")
    k = min(k, 2 * m)
    index = np.zeros((len(query), k), dtype=np.int64)
    similarity = np.zeros((len(query), k), dtype=np.float32)
    reference_t = np.ascontiguousarray(reference.T)
    for start in range(0, len(query), block):
        part = query[start:start + block]
        # Columns 0..M-1 compare the face, M..2M-1 its mirror image.
        both = np.hstack([part @ reference_t, mirrored(part) @ reference_t])
        top = np.argpartition(-both, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(both, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        index[start:start + len(part)] = top
        similarity[start:start + len(part)] = np.take_along_axis(both, top, axis=1)
    return Candidates(index % m, similarity, index >= m)


def patch_similarity(gray_face: np.ndarray, other: np.ndarray, patch: int = 32,
                     scales: tuple[float, ...] = (0.88, 0.91, 0.94, 0.97, 1.0, 1.03, 1.06, 1.09, 1.12)) -> float:
    """How well the centre of one face matches somewhere in another, allowing shifts and rescaling.

    The best normalised cross-correlation of the central ``patch`` x ``patch`` pixels of
    ``gray_face`` (at each scale) over every position in ``other``. Two crops of one photograph
    score about 0.9 or more; two different people with the same pose about 0.6-0.8, even when their
    thumbnails agree. A flat patch (no contrast) scores 0.

    Args:
        gray_face: uint8 (H, W), the face whose centre is looked for (already mirrored if the
            match is with its mirror image).
        other: uint8 (H, W), the face searched.
        patch: side of the central square taken from ``gray_face`` at each scale.
        scales: factors ``gray_face`` is resized by before its centre is taken.

    Returns:
        The best correlation, in [-1, 1] (0 when every template is flat).
    """
    import cv2

    target = np.asarray(other, dtype=np.float32)
    best = 0.0
    for scale in scales:
        face = np.asarray(gray_face, dtype=np.float32)
        if scale != 1.0:
            face = cv2.resize(face, None, fx=scale, fy=scale,
                              interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        top = (face.shape[0] - patch) // 2
        left = (face.shape[1] - patch) // 2
        template = np.ascontiguousarray(face[top:top + patch, left:left + patch])
        if template.std() < _BLANK_STD:
            continue
        score = cv2.matchTemplate(target, template, cv2.TM_CCOEFF_NORMED)
        best = max(best, float(np.nan_to_num(score, nan=0.0, posinf=0.0, neginf=0.0).max()))
    return best


def _pixel_hash(gray_face: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(gray_face).tobytes(), digest_size=16).digest()


def identical_matches(query_faces: np.ndarray, reference_faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-identical matches (the face or its mirror image) of each query face.

    Returns:
        ``(index, mirrored)``: position of the first identical reference face (-1 where none),
        and whether it is identical to the mirror image rather than the face itself.
    """
    first: dict[bytes, int] = {}
    for i, face in enumerate(reference_faces):
        first.setdefault(_pixel_hash(face), i)
    index = np.full(len(query_faces), -1, dtype=np.int64)
    flipped = np.zeros(len(query_faces), dtype=bool)
    for i, face in enumerate(query_faces):
        hit = first.get(_pixel_hash(face))
        if hit is None:
            hit = first.get(_pixel_hash(face[:, ::-1]))
            flipped[i] = hit is not None
        if hit is not None:
            index[i] = hit
    return index, flipped


def find_twins(dataset: FerDataset, splits: tuple[str, ...] = EVAL_SPLITS, k: int = 3,
               reference: str = "Training") -> pd.DataFrame:
    """The most similar ``reference``-split face of every face of the given splits.

    The ``k`` nearest reference faces by thumbnail are candidates; the one whose
    :func:`patch_similarity` is highest is the face's match, and that score its similarity.

    Returns:
        One row per face of ``splits`` with :data:`TWIN_COLUMNS`: its FER2013 ``row``, ``split``
        and ``label``; the reference face's ``twin_row`` and ``twin_label``; ``similarity`` (1
        for a pixel-identical twin), ``mirrored`` and ``identical``.

    Raises:
        ValueError: if the dataset has no face in the reference split.
    """
    ref_images, ref_labels, ref_rows = dataset.split(reference)
    if len(ref_rows) == 0:
        raise ValueError(f"the dataset has no {reference} faces to compare with"
                         + (" (the full FER2013 CSV is needed)" if reference == "Training" else ""))
    ref_descriptors = descriptors(ref_images)
    frames = []
    for split in splits:
        images, labels, rows = dataset.split(split)
        found = candidates(descriptors(images), ref_descriptors, k=k)
        index = np.zeros(len(rows), dtype=np.int64)
        similarity = np.zeros(len(rows), dtype=np.float64)
        flipped = np.zeros(len(rows), dtype=bool)
        for i, face in enumerate(images):
            for j in range(found.index.shape[1]):
                candidate = int(found.index[i, j])
                query = face[:, ::-1] if found.mirrored[i, j] else face
                score = patch_similarity(query, ref_images[candidate])
                if j == 0 or score > similarity[i]:
                    index[i], similarity[i], flipped[i] = candidate, score, found.mirrored[i, j]
        same, same_mirrored = identical_matches(images, ref_images)
        identical = same >= 0
        index = np.where(identical, same, index)
        frames.append(pd.DataFrame({
            "row": rows,
            "split": split,
            "label": labels,
            "twin_row": ref_rows[index],
            "twin_label": ref_labels[index],
            "similarity": np.where(identical, 1.0, similarity.round(4)),
            "mirrored": np.where(identical, same_mirrored, flipped),
            "identical": identical,
        }))
    return pd.concat(frames, ignore_index=True)


def load_twins(path: Path = TEST_TWINS_PATH) -> pd.DataFrame:
    """Reads a twins table written by :func:`write_twins`.

    Raises:
        FileNotFoundError: if the file is missing (``python -m fer.twins build`` writes it).
        ValueError: if its columns or values are wrong.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"twins table not found: {path}; run `python -m fer.twins build`")
    table = pd.read_csv(path)
    missing = [c for c in TWIN_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}")
    if table["row"].duplicated().any():
        raise ValueError(f"{path} lists a test face twice")
    if not table["similarity"].between(-1.0, 1.0).all():
        raise ValueError(f"{path} has similarities outside [-1, 1]")
    return table


def write_twins(table: pd.DataFrame, path: Path = TEST_TWINS_PATH) -> Path:
    """Writes a twins table as CSV (about 250 KB for both test splits)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table.loc[:, list(TWIN_COLUMNS)].to_csv(path, index=False)
    return path


def twin_mask(rows: np.ndarray, twins: pd.DataFrame, threshold: float = TWIN_THRESHOLD) -> np.ndarray:
    """Whether each FER2013 row has a Training twin at ``threshold`` or above.

    Raises:
        KeyError: naming rows the table does not cover.
    """
    lookup = twins.set_index("row")["similarity"]
    rows = np.asarray(rows, dtype=np.int64)
    missing = ~np.isin(rows, lookup.index.to_numpy())
    if missing.any():
        raise KeyError(f"the twins table does not cover FER2013 rows {rows[missing][:5].tolist()}")
    return lookup.loc[rows].to_numpy() >= threshold


# Which faces of a test split to look at: all, those without a Training twin, those with one.
TWIN_SUBSETS: tuple[str, ...] = ("all", "no_twin", "twin")


def select_by_twin(table: pd.DataFrame, twins: pd.DataFrame, subset: str,
                   threshold: float = TWIN_THRESHOLD) -> pd.DataFrame:
    """The rows of a per-face table (with a FER2013 ``row`` column) in one :data:`TWIN_SUBSETS`.

    Raises:
        ValueError: for an unknown subset.
        KeyError: naming rows the twins table does not cover.
    """
    if subset not in TWIN_SUBSETS:
        raise ValueError(f"unknown subset {subset!r}; expected one of {', '.join(TWIN_SUBSETS)}")
    if subset == "all":
        return table
    has_twin = twin_mask(table["row"].to_numpy(), twins, threshold)
    return table[has_twin if subset == "twin" else ~has_twin]


def conflicts_first(labels: np.ndarray, twin_labels: np.ndarray) -> np.ndarray:
    """The order that puts faces whose Training copy carries another label first, keeping the
    given order within each group.
    """
    differ = np.asarray(labels) != np.asarray(twin_labels)
    return np.argsort(~differ, kind="stable")


def conflicting_rows(twins: pd.DataFrame, threshold: float = TWIN_THRESHOLD) -> np.ndarray:
    """FER2013 rows of the test faces whose Training copy carries another label: one of the two
    labels is wrong, whatever any model says.
    """
    conflict = (twins["similarity"] >= threshold) & (twins["label"] != twins["twin_label"])
    return twins.loc[conflict, "row"].to_numpy(np.int64)


def accuracy_by_twin(predictions: pd.DataFrame, twins: pd.DataFrame,
                     threshold: float = TWIN_THRESHOLD) -> dict[str, dict[str, dict]]:
    """Metrics per split on all faces, on those with a Training twin and on those without.

    Args:
        predictions: per-face table with ``row``, ``split``, ``true`` and ``pred``.
        twins: from :func:`load_twins` or :func:`find_twins`.
        threshold: the similarity from which a Training face counts as a twin.

    Returns:
        ``{split: {"all" | "twin" | "no_twin": metrics dict}}``.
    """
    out = {}
    for split, frame in predictions.groupby("split", sort=False):
        has_twin = twin_mask(frame["row"].to_numpy(), twins, threshold)
        true, pred = frame["true"].to_numpy(), frame["pred"].to_numpy()
        out[str(split)] = {
            name: compute_metrics(true[mask], pred[mask]).as_dict()
            for name, mask in (("all", np.ones_like(has_twin)), ("twin", has_twin), ("no_twin", ~has_twin))
        }
    return out


def summary_lines(twins: pd.DataFrame, threshold: float = TWIN_THRESHOLD) -> list[str]:
    """How many test faces have a Training twin, per split, and how often the labels agree."""
    lines = []
    for split, frame in twins.groupby("split", sort=False):
        twin = frame[frame["similarity"] >= threshold]
        agree = (twin["label"] == twin["twin_label"]).mean() if len(twin) else float("nan")
        lines.append(
            f"{split}: {len(twin)} of {len(frame)} faces ({len(twin) / len(frame):.1%}) have a Training twin"
            f" (similarity >= {threshold}); {int(frame['identical'].sum())} are pixel-identical to one;"
            f" the twin's label agrees for {agree:.1%}"
        )
    return lines


def pair_mosaic(dataset: FerDataset, twins: pd.DataFrame, bands: list[tuple[float, float]], per_band: int = 8,
                seed: int = 0) -> np.ndarray:
    """Sampled (test face | Training twin) pairs, one row per similarity band, as a grey image.

    This is how :data:`TWIN_THRESHOLD` was chosen: look at where the pairs stop being the
    same photograph.
    """
    from fer.explorer import row_positions
    from fer.ferplus import FER2013_ROWS
    from fer.photo_report import enlarge

    position = row_positions(dataset.rows, FER2013_ROWS)
    rng = np.random.default_rng(seed)
    zoom, gap, label_height = 2, 8, 14
    tile_w = 2 * 48 * zoom + gap
    strips = []
    for low, high in bands:
        band = twins[(twins["similarity"] >= low) & (twins["similarity"] < high)]
        picked = band.iloc[rng.permutation(len(band))[:per_band]]
        strip = np.full((label_height + 48 * zoom + gap, per_band * tile_w), 255, dtype=np.uint8)
        _put_text(strip, f"similarity {low:.2f}-{high:.2f}: {len(band)} pairs", 2, label_height - 3)
        for k, (row, twin_row) in enumerate(zip(picked["row"], picked["twin_row"], strict=True)):
            pair = np.hstack([dataset.images[position[row]], dataset.images[position[twin_row]]])
            big = enlarge(pair, zoom)
            strip[label_height:label_height + big.shape[0], k * tile_w:k * tile_w + big.shape[1]] = big
        strips.append(strip)
    return np.vstack(strips)


def _put_text(image: np.ndarray, text: str, x: int, y: int) -> None:
    import cv2

    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 0, 1, cv2.LINE_AA)


def _prediction_tables(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.predictions*.csv"))


_PREDICTION_COLUMNS: tuple[str, ...] = ("row", "split", "true", "pred")


def read_predictions(path: Path) -> pd.DataFrame:
    """Reads a per-face predictions table (``fer.evaluate``'s ``<model>.predictions*.csv``).

    Raises:
        ValueError: for an empty or unreadable file, or one without the row, split, true and
            pred columns; the message says which.
    """
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path.name} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{path.name} is not a CSV table ({err})") from None
    missing = [c for c in _PREDICTION_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path.name} lacks the columns {', '.join(missing)}")
    return table


def accuracy_report(twins: pd.DataFrame, prediction_paths: list[Path], threshold: float = TWIN_THRESHOLD) -> str:
    """A text table: each predictions file's accuracy per split on all faces, with and without twin.

    A file that cannot be scored (empty, malformed, or with rows the twins table does not cover)
    gets a line saying so instead of ending the report.
    """
    header = f"{'predictions':38} {'split':12} {'all':>7} {'twin':>7} {'no twin':>8}  (n twin / no twin)"
    lines = [header, "-" * len(header)]
    for path in prediction_paths:
        try:
            by_split = accuracy_by_twin(read_predictions(path), twins, threshold)
        except (ValueError, KeyError) as err:
            lines.append(f"{path.name:38} skipped: {err.args[0] if err.args else err}")
            continue
        for split, parts in by_split.items():
            lines.append(
                f"{path.name:38} {split:12} {parts['all']['accuracy']:7.2%} {parts['twin']['accuracy']:7.2%}"
                f" {parts['no_twin']['accuracy']:8.2%}  ({parts['twin']['n']} / {parts['no_twin']['n']})"
            )
    return "\n".join(lines)


def update_cards(models_dir: Path) -> list[Path]:
    """Records, in each model's card beside its predictions tables, the metrics on the test faces
    without a Training twin: ``metrics_no_twin`` (from ``<name>.predictions.csv``),
    ``metrics_no_twin_tta`` and ``metrics_no_twin_tta_shifts`` (from the tables of those views),
    as ``fer.evaluate --update-card`` would from the same predictions.

    Returns:
        The cards written.
    """
    from fer.evaluate import VIEWS, no_twin_metrics, predictions_path, views_suffix
    from fer.metadata import metadata_path, read_metadata, write_metadata

    written = []
    for model_path in sorted(models_dir.glob("*.h5")):
        if not metadata_path(model_path).is_file():
            continue
        card = read_metadata(model_path)
        changed = False
        for tta, shifts in VIEWS:
            table = predictions_path(model_path, tta, shifts)
            if table.is_file():
                try:
                    metrics = no_twin_metrics(read_predictions(table))
                except ValueError as err:
                    print(f"note: {err}; {metadata_path(model_path).name} keeps what it had", file=sys.stderr)
                    continue
                if metrics is not None:
                    card["metrics_no_twin" + views_suffix(tta, shifts)] = metrics
                    changed = True
        if changed:
            write_metadata(model_path, card)
            written.append(metadata_path(model_path))
    return written


def main(argv: list[str] | None = None) -> int:
    """CLI: ``build`` the twins table, or ``report`` from it."""
    parser = argparse.ArgumentParser(prog="python -m fer.twins", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("build", "report"),
                        help="build: find the twins in the full CSV and write the table; report: read it")
    parser.add_argument("--data", default=None, help="FER2013 CSV (build; default: the shared CSV)")
    parser.add_argument("--out", type=Path, default=TEST_TWINS_PATH, help="the twins table to write or read")
    parser.add_argument("--threshold", type=float, default=TWIN_THRESHOLD,
                        help="similarity from which a face counts as a twin")
    parser.add_argument("--mosaic", type=Path, default=None,
                        help="also write sampled pairs per similarity band to this PNG (build only)")
    parser.add_argument("--models", type=Path, default=MODELS_DIR,
                        help="folder whose *.predictions*.csv files get the accuracy table")
    parser.add_argument("--update-cards", action="store_true",
                        help="also record the metrics without twins in the cards of the models in --models")
    args = parser.parse_args(argv)
    if not args.models.is_dir():
        print(f"error: no model folder at {args.models} (--models)", file=sys.stderr)
        return 2

    try:
        if args.command == "build":
            from fer.data import fer2013_rows_problem, load_fer2013
            from fer.paths import FER2013_CSV

            dataset = load_fer2013(args.data or FER2013_CSV)
            problem = fer2013_rows_problem(dataset)
            if problem:
                # Every reader looks a face up by its FER2013 row: a subset's numbers would mislabel them.
                raise ValueError(f"the twins table is keyed by FER2013 row number, and {problem}; "
                                 "build it from the full FER2013 CSV")
            twins = find_twins(dataset)
            write_twins(twins, args.out)
            print(f"wrote {args.out} ({len(twins)} test faces)")
            # Model choices read PublicTest: copies of its faces in PrivateTest leak a little too.
            across = find_twins(dataset, ("PrivateTest",), reference="PublicTest")
            copied = across[across["similarity"] >= args.threshold]
            agree = (copied["label"] == copied["twin_label"]).mean() if len(copied) else float("nan")
            print(f"PrivateTest faces with a copy in PublicTest (similarity >= {args.threshold}): {len(copied)}"
                  f" ({len(copied) / max(len(across), 1):.1%}), {int(copied['identical'].sum())} pixel-identical;"
                  f" the copy's label agrees for {agree:.1%}; of them also in Training:"
                  f" {int(twin_mask(copied['row'].to_numpy(), twins, args.threshold).sum())}")
            if args.mosaic is not None:
                import cv2

                bands = [(0.97, 1.01), (0.95, 0.97), (0.93, 0.95), (0.92, 0.93), (0.90, 0.92), (0.85, 0.90)]
                args.mosaic.parent.mkdir(parents=True, exist_ok=True)
                try:
                    written = cv2.imwrite(str(args.mosaic), pair_mosaic(dataset, twins, bands))
                except cv2.error:  # a name OpenCV has no writer for
                    written = False
                if not written:
                    raise ValueError(f"could not write {args.mosaic} (a .png name is needed)")
                print(f"wrote {args.mosaic}")
        else:
            twins = load_twins(args.out)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n".join(summary_lines(twins, args.threshold)))
    conflicts = twins[twins["row"].isin(conflicting_rows(twins, args.threshold))]
    pairs = conflicts.groupby(["label", "twin_label"]).size().sort_values(ascending=False).head(5)
    print("most common label disagreements (test label <- Training twin's label): " + ", ".join(
        f"{EMOTIONS[a]} <- {EMOTIONS[b]} {n}" for (a, b), n in pairs.items()))
    print()
    tables = _prediction_tables(args.models)
    if not tables:
        print(f"note: no *.predictions*.csv in {args.models} to score", file=sys.stderr)
    print(accuracy_report(twins, tables, args.threshold))
    if args.update_cards:
        if args.threshold != TWIN_THRESHOLD or args.out != TEST_TWINS_PATH:
            print("error: cards record the embedded table at the default threshold only", file=sys.stderr)
            return 2
        for card in update_cards(args.models):
            print(f"updated {card}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
