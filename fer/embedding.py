"""A map of the test faces in a model's feature space, and their nearest neighbours.

The features are the input of the model's last (softmax) layer, averaged over the face and its
mirror image (the same flip the app's TTA uses), then L2-normalised: faces the model sees alike
lie close together whatever its final decision. Two things are kept per released model in
``models/<name>.embedding.npz`` (``python -m fer.embedding build --model M``):

- a 2-D t-SNE layout per test split (:func:`tsne`, exact, in NumPy: 3,589 faces take about a
  minute), which the app's Map page draws so that clusters, stray faces and mixed regions can be
  selected and looked at;
- the first :data:`NEIGHBOUR_DIMS` principal components of the features (float16), for a
  nearest-neighbour search by cosine over those components ("faces the model finds similar to
  this one") without the model.

The build prints how much of the feature space's neighbourhoods the 2-D layout keeps, so the map
is not read for more than it shows.
"""

from __future__ import annotations

import sys
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer.cli import argument_parser, at_least, quiet_tensorflow
from fer.data import file_sha256
from fer.labels import EVAL_SPLITS

NEIGHBOUR_DIMS: int = 32
PERPLEXITY: float = 30.0
ITERATIONS: int = 1000
_EXAGGERATION: float = 12.0
_EXAGGERATION_ITERATIONS: int = 250


def embedding_path(model_path: str | Path) -> Path:
    """Where a model's map lives: ``<stem>.embedding.npz`` beside it."""
    path = Path(model_path)
    return path.with_name(path.stem + ".embedding.npz")


def feature_model(model):
    """Returns a Keras model giving the input of ``model``'s last layer (its penultimate features).

    Raises:
        ValueError: for models with more than one input (the landmark models).
    """
    import keras

    if len(model.inputs) != 1:
        raise ValueError("maps need a single-input model; landmark models take two inputs")
    return keras.Model(model.inputs, model.layers[-1].input)


def face_features(features_of, gray_faces: np.ndarray, illumination: str = "none",
                  batch_size: int = 256) -> np.ndarray:
    """Flip-averaged, L2-normalised features of uint8 faces (N, 48, 48).

    Args:
        features_of: a Keras model from :func:`feature_model`.
        gray_faces: uint8 faces.
        illumination: the model's illumination correction (from its card).
        batch_size: inference batch size.

    Returns:
        float32 (N, D) rows of unit length (zero rows stay zero).
    """
    from fer.preprocess import to_model_input

    x = to_model_input(gray_faces, illumination)
    runs = [np.asarray(features_of.predict(view, batch_size=batch_size, verbose=0), dtype=np.float32)
            for view in (x, x[:, :, ::-1, :])]
    return normalise((runs[0] + runs[1]) / 2)


def normalise(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; all-zero rows are left at zero."""
    features = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return np.divide(features, norms, out=np.zeros_like(features), where=norms > 0)


def principal_components(features: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """Projects centred features on their first ``dims`` principal axes.

    Returns:
        (coordinates (N, dims) float32, share of the variance each axis explains).
    """
    centred = np.asarray(features, dtype=np.float64) - np.mean(features, axis=0)
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)
    dims = min(dims, axes.shape[0])
    # Fix each axis's sign (largest loading positive) so rebuilds give the same picture.
    signs = np.sign(axes[np.arange(dims), np.abs(axes[:dims]).argmax(axis=1)])
    signs[signs == 0] = 1
    coordinates = centred @ (axes[:dims].T * signs)
    variance = singular**2
    return coordinates.astype(np.float32), (variance[:dims] / variance.sum()).astype(np.float32)


def squared_distances(x: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances (N, N), float32, zero diagonal."""
    x = np.asarray(x, dtype=np.float32)
    sq = np.einsum("ij,ij->i", x, x)
    d2 = sq[:, None] + sq[None, :] - 2 * (x @ x.T)
    np.maximum(d2, 0, out=d2)
    np.fill_diagonal(d2, 0)
    return d2


def conditional_affinities(d2: np.ndarray, perplexity: float = PERPLEXITY,
                           steps: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Each point's t-SNE conditional distribution over its nearest neighbours.

    As in the Barnes-Hut variants, a point's distribution covers only its 3 x perplexity nearest
    neighbours (the rest would get vanishing weights); its Gaussian width is found by bisection,
    all rows at once, so that the distribution has the given perplexity.

    Returns:
        (neighbour indices (N, k), their probabilities (N, k), rows summing to 1).
    """
    n = d2.shape[0]
    if n < 4:
        raise ValueError("a map needs at least 4 faces")
    perplexity = max(1.0, min(perplexity, (n - 1) / 3))
    k = min(n - 1, int(3 * perplexity))
    masked = np.array(d2, dtype=np.float64)
    np.fill_diagonal(masked, np.inf)
    neighbours = np.argpartition(masked, k - 1, axis=1)[:, :k]
    near = np.take_along_axis(masked, neighbours, axis=1)
    # Distances relative to each row's nearest neighbour keep exp() in range.
    near -= near.min(axis=1, keepdims=True)
    target = np.log(perplexity)
    lo, hi, beta = np.zeros(n), np.full(n, np.inf), np.ones(n)
    for _ in range(steps):
        p = np.exp(-near * beta[:, None])
        total = p.sum(axis=1)
        entropy = np.log(total) + beta * (near * p).sum(axis=1) / total
        too_flat = entropy > target  # too wide a kernel: raise beta
        lo = np.where(too_flat, beta, lo)
        hi = np.where(too_flat, hi, beta)
        beta = np.where(np.isfinite(hi), (lo + hi) / 2, beta * 2)
    p = np.exp(-near * beta[:, None])
    return neighbours, p / p.sum(axis=1, keepdims=True)


def affinities(d2: np.ndarray, perplexity: float = PERPLEXITY) -> np.ndarray:
    """Symmetric t-SNE input affinities P (N, N) summing to 1 (see :func:`conditional_affinities`)."""
    n = d2.shape[0]
    neighbours, p = conditional_affinities(d2, perplexity)
    full = np.zeros((n, n), dtype=np.float64)
    np.put_along_axis(full, neighbours, p, axis=1)
    full = (full + full.T) / (2 * n)
    return np.maximum(full, 1e-12).astype(np.float32)


def tsne(x: np.ndarray, perplexity: float = PERPLEXITY, iterations: int = ITERATIONS) -> np.ndarray:
    """Exact-gradient t-SNE (van der Maaten and Hinton 2008) to 2-D, deterministic (PCA start).

    The optimiser follows the reference implementation: early exaggeration 12 for 250
    iterations, momentum 0.5 then 0.8, per-coordinate gains, learning rate max(N / 48, 50).
    Each step works in two preallocated (N, N) buffers: about 0.2 s for 3,589 faces on 2 cores.

    Args:
        x: (N, D) points; O(N^2) memory, so keep N to a few thousand.
        perplexity: effective number of neighbours.
        iterations: gradient steps.

    Returns:
        float32 (N, 2) coordinates, centred.
    """
    n = len(x)
    p = affinities(squared_distances(x), perplexity)
    exaggerated = p * np.float32(_EXAGGERATION)
    start, _ = principal_components(x, 2)
    y = (start / (np.std(start[:, 0]) or 1.0) * 1e-4).astype(np.float32)
    update, gains = np.zeros_like(y), np.ones_like(y)
    rate = max(n / _EXAGGERATION / 4, 50.0)
    kernel = np.empty((n, n), dtype=np.float32)
    weights = np.empty((n, n), dtype=np.float32)
    for step in range(iterations):
        early = step < _EXAGGERATION_ITERATIONS
        # kernel = 1 / (1 + |y_i - y_j|^2), zero on the diagonal
        squares = np.einsum("ij,ij->i", y, y)
        np.matmul(y, y.T, out=kernel)
        kernel *= -2
        kernel += squares[:, None]
        kernel += squares[None, :]
        kernel += 1
        np.reciprocal(kernel, out=kernel)
        np.fill_diagonal(kernel, 0)
        total = kernel.sum(dtype=np.float64)
        # weights = (P - Q) * kernel, with Q = kernel / total
        np.multiply(exaggerated if early else p, kernel, out=weights)
        np.square(kernel, out=kernel)
        kernel *= np.float32(1 / total)
        weights -= kernel
        gradient = 4.0 * (weights.sum(axis=1)[:, None] * y - weights @ y)
        same = np.sign(gradient) == np.sign(update)
        gains = np.maximum(np.where(same, gains * 0.8, gains + 0.2), 0.01).astype(np.float32)
        update = ((0.5 if early else 0.8) * update - rate * gains * gradient).astype(np.float32)
        y = y + update
        y -= y.mean(axis=0)
    return y


def nearest(features: np.ndarray, query: np.ndarray, k: int, exclude: int | None = None) -> np.ndarray:
    """Indices of the ``k`` rows of ``features`` with the highest cosine to ``query``, best first.

    Args:
        features: (N, D) candidate features.
        query: (D,) feature vector.
        k: how many to return.
        exclude: an index never to return (the query face itself).
    """
    scores = normalise(features) @ normalise(np.asarray(query, dtype=np.float32)[None])[0]
    if exclude is not None:
        scores[exclude] = -np.inf
    k = min(k, len(scores) - (exclude is not None))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    best = np.argpartition(-scores, k - 1)[:k]
    return best[np.argsort(-scores[best], kind="stable")]


def neighbour_sets(points: np.ndarray, k: int) -> np.ndarray:
    """(N, k) indices of each point's k nearest other points (Euclidean)."""
    d2 = squared_distances(points)
    np.fill_diagonal(d2, np.inf)
    return np.argpartition(d2, k, axis=1)[:, :k]


def neighbourhood_kept(features: np.ndarray, layout: np.ndarray, k: int = 10) -> float:
    """Mean share of each face's k nearest neighbours in feature space that are also among its k
    nearest on the 2-D map (1 = every neighbourhood kept).
    """
    high, low = neighbour_sets(features, k), neighbour_sets(layout, k)
    shared = [len(np.intersect1d(a, b, assume_unique=True)) for a, b in zip(high, low, strict=True)]
    return float(np.mean(shared) / k)


def neighbour_agreement(points: np.ndarray, labels: np.ndarray, k: int = 10,
                        near: np.ndarray | None = None) -> np.ndarray:
    """Per face, the share of its k nearest neighbours carrying the same label (``near``: the
    neighbour sets if already computed by :func:`neighbour_sets`).
    """
    labels = np.asarray(labels)
    near = neighbour_sets(points, k) if near is None else near
    return (labels[near] == labels[:, None]).mean(axis=1)


@dataclass(frozen=True)
class FaceMap:
    """A model's map of the test faces (rows in the order of the embedded test faces)."""

    rows: np.ndarray
    split: np.ndarray
    xy: np.ndarray
    features: np.ndarray
    model_sha256: str
    neighbourhood_kept: dict[str, float]

    def positions(self, split: str) -> np.ndarray:
        """Indices of one split's faces."""
        return np.flatnonzero(self.split == split)


def map_table(face_map: FaceMap, predictions, split: str, reference=None):
    """One split's faces on the map with the model's predictions, as a table.

    Args:
        face_map: the model's map.
        predictions: its per-image predictions (``fer.evaluate``'s CSV: row, true, pred, p_*).
        split: ``PublicTest`` or ``PrivateTest``.
        reference: a ``pandas.Series`` of the labels taken as the truth by FER2013 row (-1: the
            face has none; ``fer.explorer.reference_labels``) covering every predicted face of
            ``split``, or ``None`` for FER2013's own.

    Returns:
        DataFrame with columns row, x, y, true (FER2013's label), reference, pred, confidence,
        correct (the prediction matches the reference label; False without one), position (the
        face's index in ``face_map``, for its features); only faces present in both.
    """
    import pandas as pd

    from fer.labels import EMOTIONS

    positions = face_map.positions(split)
    placed = pd.DataFrame({"row": face_map.rows[positions], "x": face_map.xy[positions, 0],
                           "y": face_map.xy[positions, 1], "position": positions})
    columns = ["p_" + e for e in EMOTIONS]
    table = placed.merge(predictions.loc[predictions["split"] == split, ["row", "true", "pred", *columns]],
                         on="row", how="inner")
    table["reference"] = table["true"] if reference is None else reference.loc[table["row"]].to_numpy(np.int64)
    table["confidence"] = table[columns].to_numpy().max(axis=1)
    table["correct"] = table["reference"] == table["pred"]
    return table.drop(columns=columns)


def build_map(model_path: str | Path, iterations: int = ITERATIONS) -> FaceMap:
    """Computes a model's map of the embedded test faces (both evaluation splits)."""
    from fer.metadata import model_info
    from fer.models import load_saved_model
    from fer.testset import load_test_faces

    info = model_info(model_path)
    features_of = feature_model(load_saved_model(model_path))
    faces = load_test_faces()
    features = face_features(features_of, faces.images, info.illumination)
    reduced, _ = principal_components(features, NEIGHBOUR_DIMS)
    xy = np.zeros((len(features), 2), dtype=np.float32)
    kept = {}
    for split in EVAL_SPLITS:
        members = np.flatnonzero(faces.usage == split)
        # t-SNE on 50 principal components, the usual pre-reduction (noise out, time down).
        start, _ = principal_components(features[members], 50)
        xy[members] = tsne(start, iterations=iterations)
        kept[split] = round(neighbourhood_kept(reduced[members], xy[members]), 4)
    return FaceMap(rows=faces.rows.astype(np.int64), split=faces.usage.astype(str), xy=xy,
                   features=reduced.astype(np.float16), model_sha256=file_sha256(model_path),
                   neighbourhood_kept=kept)


def save_map(face_map: FaceMap, path: str | Path) -> Path:
    """Writes a map as a compressed ``.npz``."""
    np.savez_compressed(
        path, rows=face_map.rows.astype(np.int32), split=face_map.split.astype("U11"), xy=face_map.xy,
        features=face_map.features, model_sha256=np.array(face_map.model_sha256),
        kept_splits=np.array(list(face_map.neighbourhood_kept), dtype="U11"),
        kept=np.array(list(face_map.neighbourhood_kept.values()), dtype=np.float64),
    )
    return Path(path)


def load_map(path: str | Path) -> FaceMap:
    """Reads a map written by :func:`save_map`.

    Raises:
        FileNotFoundError: when there is no map at ``path``.
        ValueError: when the file is not a map.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no map at {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return FaceMap(
                rows=archive["rows"].astype(np.int64), split=archive["split"].astype(str),
                xy=archive["xy"].astype(np.float32), features=archive["features"],
                model_sha256=str(archive["model_sha256"]),
                neighbourhood_kept=dict(zip(archive["kept_splits"].astype(str).tolist(),
                                            archive["kept"].tolist(), strict=True)),
            )
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise ValueError(f"{path.name} is not a face map ({type(err).__name__}: {err}); rebuild it") from err


def map_report(face_map: FaceMap, predictions, twin_rows: set[int] | None = None, k: int = 10) -> dict[str, dict]:
    """What a map shows, per split: the share of each face's ``k`` nearest map neighbours with
    the same prediction and the same true label, and, given the rows with a copy in Training
    (``fer.twins``), how often such faces neighbour each other against their base rate.
    """
    out = {}
    for split in EVAL_SPLITS:
        table = map_table(face_map, predictions, split)
        if table.empty:
            continue
        points = table[["x", "y"]].to_numpy()
        near = neighbour_sets(points, k)  # one distance matrix for every figure below
        entry = {"faces": len(table), "neighbourhood_kept": face_map.neighbourhood_kept.get(split),
                 "same_prediction": float(neighbour_agreement(points, table["pred"].to_numpy(), near=near).mean()),
                 "same_label": float(neighbour_agreement(points, table["true"].to_numpy(), near=near).mean())}
        if twin_rows is not None:
            copied = table["row"].isin(twin_rows).to_numpy()
            entry |= {"copies": float(copied.mean()),
                      "copies_next_to_copies": float(copied[near[copied]].mean()) if copied.any() else None,
                      "copies_next_to_others": float(copied[near[~copied]].mean()) if (~copied).any() else None}
        out[split] = entry
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m fer.embedding build|report --model models/fer_best.h5``."""
    parser = argument_parser("python -m fer.embedding", __doc__)
    parser.add_argument("command", choices=("build", "report"),
                        help="build: write the map (minutes); report: what a built map shows")
    parser.add_argument("--model", required=True, help="a single-input .h5 model with its card beside it")
    parser.add_argument("--iterations", type=at_least(1), default=ITERATIONS,
                        help=f"t-SNE steps (build; default {ITERATIONS}, the first "
                             f"{_EXAGGERATION_ITERATIONS} exaggerated)")
    parser.add_argument("--out", default=None, help="default: <model stem>.embedding.npz beside the model")
    args = parser.parse_args(argv)
    quiet_tensorflow()
    if not Path(args.model).is_file():
        print(f"error: no model at {args.model}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else embedding_path(args.model)
    if args.command == "report":
        return _report(Path(args.model), out)
    started = time.perf_counter()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)  # now, not after a minute of t-SNE
        face_map = build_map(args.model, iterations=args.iterations)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    path = save_map(face_map, out)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB) in {time.perf_counter() - started:.0f} s")
    for split, kept in face_map.neighbourhood_kept.items():
        print(f"{split}: the 2-D map keeps {kept:.1%} of each face's 10 nearest neighbours "
              f"(in {NEIGHBOUR_DIMS} principal components of the features)")
    return 0


def _report(model: Path, path: Path) -> int:
    import pandas as pd

    from fer.evaluate import predictions_path
    from fer.twins import TWIN_THRESHOLD, load_twins

    if not path.is_file():
        out = "" if path == embedding_path(model) else f" --out {path}"
        print(f"error: no map at {path}: build it first with `python -m fer.embedding build --model {model}{out}` "
              "(several minutes)", file=sys.stderr)
        return 2
    try:
        face_map = load_map(path)
        predictions = pd.read_csv(predictions_path(model))
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        twins = load_twins()
        twin_rows = set(twins.loc[twins["similarity"] >= TWIN_THRESHOLD, "row"].tolist())
    except (FileNotFoundError, ValueError):
        twin_rows = None
    if face_map.model_sha256 != file_sha256(model):
        print(f"note: {path.name} was built from other weights than {model.name}", file=sys.stderr)
    for split, entry in map_report(face_map, predictions, twin_rows).items():
        line = (f"{split} ({entry['faces']} faces): map keeps {entry['neighbourhood_kept']:.1%} of the 10-NN; "
                f"of a face's 10 map neighbours {entry['same_prediction']:.1%} share its prediction, "
                f"{entry['same_label']:.1%} its label")
        if "copies" in entry:
            line += (f"; faces with a copy in Training ({entry['copies']:.1%}) have "
                     f"{entry['copies_next_to_copies']:.1%} such neighbours, "
                     f"the others {entry['copies_next_to_others']:.1%}")
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
