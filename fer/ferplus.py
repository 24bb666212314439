"""The FER+ crowd votes, embedded in the package for the app, and helpers on vote arrays.

``fer2013new.csv`` lives in the shared data folder, which a deployed app may not have. The
embedded table ``fer/assets/ferplus_votes.npz`` (about 0.2 MB, compressed ``.npz``) holds what the app needs: the
10 votes per FER2013 row as ``uint8``, the split of each row, the FER+ image names and the
SHA-256 of the CSV it was built from. Rebuild it with ``python -m fer.ferplus build``.

The vote helpers are pure functions on arrays of shape ``(10,)`` (one row) or ``(N, 10)``, with
columns in the order of :data:`fer.labels.FERPLUS_COLUMNS`.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fer.data import DataFormatError, FerPlusVotes, file_sha256, load_ferplus
from fer.labels import EMOTIONS, FERPLUS_COLUMNS, FERPLUS_TO_EMOTION, SPLITS
from fer.paths import FERPLUS_CSV, FERPLUS_VOTES_PATH

FER2013_ROWS: int = 35_887
FORMAT_VERSION: int = 1
MAX_EMBEDDED_BYTES: int = 2_000_000

# Column of each FER2013 emotion in the FER+ vote table, in EMOTIONS order.
_EMOTION_COLUMNS: tuple[int, ...] = tuple(
    FERPLUS_COLUMNS.index(ferplus) for emotion in EMOTIONS
    for ferplus, mapped in FERPLUS_TO_EMOTION.items() if mapped == emotion
)


def _as_votes(votes: np.ndarray) -> np.ndarray:
    """Validate a vote array of shape (10,) or (N, 10) and widens it so sums cannot overflow."""
    array = np.asarray(votes)
    if array.ndim not in (1, 2) or array.shape[-1] != len(FERPLUS_COLUMNS):
        raise ValueError(f"FER+ votes must have shape (10,) or (N, 10); got {array.shape}")
    return array.astype(np.int64, copy=False)


def emotion_votes(votes: np.ndarray) -> np.ndarray:
    """Return the votes for the 7 FER2013 emotions, re-ordered to :data:`fer.labels.EMOTIONS`.

    Args:
        votes: FER+ votes, shape (10,) or (N, 10).

    Returns:
        int64 array of shape (7,) or (N, 7); contempt, unknown and NF votes are dropped.
    """
    return _as_votes(votes)[..., list(_EMOTION_COLUMNS)]


def majority_label(votes: np.ndarray) -> np.ndarray:
    """Return the FER+ plurality label over the 7 FER2013 emotions.

    Ties break towards the lower FER2013 code.

    Args:
        votes: FER+ votes, shape (10,) or (N, 10).

    Returns:
        int64 codes into :data:`fer.labels.EMOTIONS`, shape () or (N,); -1 where no emotion got a
        vote (for example the rows FER+ marked not-a-face).
    """
    emo = emotion_votes(votes)
    majority = np.asarray(emo.argmax(axis=-1), dtype=np.int64)
    return np.where(emo.sum(axis=-1) == 0, -1, majority)


def _normalise(counts: np.ndarray) -> np.ndarray:
    totals = counts.sum(axis=-1, keepdims=True)
    # A row without votes gets an all-zero distribution rather than NaNs the app would have to
    # special-case.
    return np.divide(counts, totals, out=np.zeros(counts.shape, dtype=np.float64), where=totals > 0)


def vote_distribution(votes: np.ndarray) -> np.ndarray:
    """Return the share of votes per FER+ column (all 10, in :data:`fer.labels.FERPLUS_COLUMNS` order).

    Args:
        votes: FER+ votes, shape (10,) or (N, 10).

    Returns:
        float64 array of the same shape, each row summing to 1 (all zeros for a row without votes).
    """
    return _normalise(_as_votes(votes))


def emotion_distribution(votes: np.ndarray) -> np.ndarray:
    """Return the share of emotion votes per FER2013 emotion (in :data:`fer.labels.EMOTIONS` order).

    Args:
        votes: FER+ votes, shape (10,) or (N, 10).

    Returns:
        float64 array of shape (7,) or (N, 7), each row summing to 1 over the emotion votes only
        (all zeros where no emotion got a vote).
    """
    return _normalise(emotion_votes(votes))


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a compressed ``.npz`` like :func:`numpy.savez_compressed`, but byte-reproducible.

    ``savez_compressed`` stamps each member with the current time, so every rebuild would change
    the committed file; a fixed timestamp keeps a rebuild from the same CSV a no-op for git.
    """
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w") as handle:
                np.lib.format.write_array(handle, np.asanyarray(array), allow_pickle=False)


def build_embedded(
    csv_path: str | Path = FERPLUS_CSV, out_path: str | Path = FERPLUS_VOTES_PATH
) -> Path:
    """Write the compact embedded FER+ table from ``fer2013new.csv``.

    Args:
        csv_path: the FER+ CSV (one row per FER2013 row, same order).
        out_path: the ``.npz`` to (re)write; written to a temporary file first, then renamed,
            so a reader never sees a half-written table.

    Returns:
        The path written.

    Raises:
        FileNotFoundError: if the CSV is missing.
        DataFormatError: for a malformed CSV, a vote above 255 or an unknown split name.
        ValueError: if the table would exceed :data:`MAX_EMBEDDED_BYTES`.
    """
    csv_path, out_path = Path(csv_path), Path(out_path)
    table = load_ferplus(csv_path, expected_rows=FER2013_ROWS)
    if table.votes.max() > np.iinfo(np.uint8).max:
        raise DataFormatError(f"{csv_path}: a vote count exceeds 255 and does not fit uint8")
    unknown = sorted(set(table.usage.tolist()) - set(SPLITS))
    if unknown:
        raise DataFormatError(f"{csv_path}: unknown usage {unknown}; expected one of {', '.join(SPLITS)}")
    usage_codes = np.array([SPLITS.index(name) for name in table.usage], dtype=np.uint8)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.stem + ".tmp.npz")
    _write_npz(
        tmp,
        {
            "votes": table.votes.astype(np.uint8),
            "usage_codes": usage_codes,
            "image_names": table.image_names.astype(str),
            "columns": np.array(FERPLUS_COLUMNS),
            "splits": np.array(SPLITS),
            "source_sha256": np.array(file_sha256(csv_path)),
            "format_version": np.array(FORMAT_VERSION),
        },
    )
    size = tmp.stat().st_size
    if size > MAX_EMBEDDED_BYTES:
        tmp.unlink()
        raise ValueError(f"embedded FER+ table is {size} bytes; the limit is {MAX_EMBEDDED_BYTES}")
    tmp.replace(out_path)
    return out_path


def embedded_checksum(path: str | Path = FERPLUS_VOTES_PATH) -> str:
    """Return the SHA-256 of the CSV the embedded table was built from."""
    with np.load(path, allow_pickle=False) as archive:
        return str(archive["source_sha256"])


def load_ferplus_votes(path: str | Path = FERPLUS_VOTES_PATH) -> FerPlusVotes:
    """Load the embedded FER+ table (no access to the shared data folder needed).

    Args:
        path: the embedded ``.npz``; defaults to :data:`fer.paths.FERPLUS_VOTES_PATH`.

    Returns:
        The votes as ``uint8`` (35887, 10), the split name and FER+ image name of each row.

    Raises:
        FileNotFoundError: if the file is missing (run ``python -m fer.ferplus build``).
        DataFormatError: if the file's layout is not the one this module writes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embedded FER+ table not found: {path}; run `python -m fer.ferplus build`")
    with np.load(path, allow_pickle=False) as archive:
        try:
            version = int(archive["format_version"])
            columns = tuple(archive["columns"].tolist())
            splits = tuple(archive["splits"].tolist())
            votes, codes, names = archive["votes"], archive["usage_codes"], archive["image_names"]
        except KeyError as err:
            raise DataFormatError(f"{path}: missing array {err}; rebuild with `python -m fer.ferplus build`") from None
    if version != FORMAT_VERSION or columns != FERPLUS_COLUMNS or splits != SPLITS:
        raise DataFormatError(f"{path}: written by another format version; rebuild with `python -m fer.ferplus build`")
    if votes.shape != (FER2013_ROWS, len(FERPLUS_COLUMNS)) or codes.shape != (FER2013_ROWS,):
        raise DataFormatError(f"{path}: votes {votes.shape}, usage {codes.shape}; expected {FER2013_ROWS} rows")
    return FerPlusVotes(votes=votes, usage=np.array(SPLITS)[codes], image_names=names)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m fer.ferplus build [--csv PATH] [--out PATH]``.

    Returns:
        The exit code: 0 on success, 1 when the CSV is missing or malformed.
    """
    parser = argparse.ArgumentParser(prog="python -m fer.ferplus", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="(re)write the embedded FER+ table from fer2013new.csv")
    build.add_argument("--csv", type=Path, default=FERPLUS_CSV, help="FER+ CSV (default: %(default)s)")
    build.add_argument("--out", type=Path, default=FERPLUS_VOTES_PATH, help="output .npz (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        out = build_embedded(args.csv, args.out)
    except (FileNotFoundError, ValueError) as err:  # DataFormatError is a ValueError.
        print(f"error: {err}", file=sys.stderr)
        return 1
    table = load_ferplus_votes(out)
    print(f"wrote {out} ({out.stat().st_size} bytes, {len(table.votes)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
