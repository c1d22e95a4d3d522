"""The serving snapshot: every user's features as of one date, looked up by id with a binary search.

On disk (beside `features.parquet`, checksummed in the same manifest) it is a matrix with a row per
user in id order, text columns as codes into their categories, each column kept in the narrowest type
that holds it exactly (scoring.matrix: one numpy file per type), and the sorted ids: files that every
worker memory-maps read-only, so that the page cache holds one copy whatever the worker count. Each
model reads its columns of it through `FeatureRows`, not through a copy of its own.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from scoring.artifacts import ArtifactError, file_sha256
from scoring.matrix import FLOAT, INTEGERS, NarrowMatrix, Reader, narrowest, pack
from scoring.spec import FeatureSpec, numbers
from scoring.thresholds import SORTED_SEARCH_IDS
from scoring.vocabulary import NOT_FEATURES

VALUES_FILE, IDS_FILE, COLUMNS_FILE = "snapshot-values.npy", "snapshot-ids.npy", "snapshot-columns.json"
# Work over the whole snapshot (a model's scores of every user, column means) is done this many rows at a
# time, so that it holds a slice of the snapshot rather than a copy of it.
CHUNK_ROWS = 100_000


def locate_one(sorted_ids: np.ndarray, user_id: int) -> tuple[int, bool]:
    """`locate` of one id, as plain Python values: a single user's request, where one scalar
    search costs a third of the array calls."""
    pos = min(int(sorted_ids.searchsorted(user_id)), len(sorted_ids) - 1)
    return pos, bool(sorted_ids[pos] == user_id)


def locate(sorted_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of ids in a snapshot's sorted id column, and a mask of those found."""
    if len(ids) == 1:
        pos, found = locate_one(sorted_ids, ids[0])
        return np.array([pos]), np.array([found])
    if len(ids) > SORTED_SEARCH_IDS:
        order = np.argsort(ids, kind="stable")
        pos = np.empty(len(ids), dtype=np.intp)
        pos[order] = np.searchsorted(sorted_ids, ids[order])
    else:
        pos = np.searchsorted(sorted_ids, ids)
    # searchsorted never returns < 0; np.minimum rather than np.clip, which costs 5x more.
    pos = np.minimum(pos, len(sorted_ids) - 1)
    return pos, sorted_ids[pos] == ids


def id_array(ids: pd.Index | np.ndarray) -> np.ndarray:
    """User ids as numpy searches them fastest: int64 for whole numbers, fixed-width text otherwise."""
    ids = np.asarray(ids)
    return ids if ids.dtype.kind in "iu" else ids.astype(str)


def _is_text(col: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col))


@dataclass(frozen=True)
class FeatureRows:
    """A model's features of snapshot rows, in its own column order, read from the snapshot's matrix:
    rows are copied per call, the matrix never. Columns the snapshot lacks (the offer of an uplift
    model) are NaN; a text column's codes are translated to the model's own category codes."""

    values: NarrowMatrix = field(repr=False)  # the snapshot's (n, C) matrix
    src: np.ndarray  # (F,) the snapshot column of each model column (0 where it lacks it)
    absent: np.ndarray  # (F,) bool: the snapshot lacks the column
    recode: tuple[tuple[int, np.ndarray], ...]  # (model column, snapshot code → model code)

    @cached_property
    def _reader(self) -> Reader:
        return self.values.reader(self.src)

    def __len__(self) -> int:
        return len(self.values)

    def take(self, rows: np.ndarray | slice) -> np.ndarray:
        """The model's matrix of these snapshot rows (a new array)."""
        X = self._reader.take(rows)
        X[:, self.absent] = np.nan
        for j, table in self.recode:
            codes = X[:, j]
            known = ~np.isnan(codes)
            codes[known] = table[codes[known].astype(np.intp)]
        return X

    def row(self, row: int) -> np.ndarray:
        """One row as a (1, F) matrix."""
        return self.take(slice(row, row + 1))

    def chunks(self, size: int = CHUNK_ROWS):
        """The whole snapshot in the model's order, a slice of rows at a time (a full copy would be
        the snapshot's size again)."""
        for start in range(0, len(self.values), size):
            yield self.take(slice(start, start + size))

    def map(self, fn) -> np.ndarray:
        """fn of every snapshot row, applied a chunk of rows at a time; its results stacked by row."""
        return np.concatenate([fn(X) for X in self.chunks()])


@dataclass
class Snapshot:
    """Features of every user as of the snapshot date: `values` (n, C), read as float64, in id order, `ids`
    sorted (whole numbers or text, as the warehouse has them), text columns as codes into `categories`."""

    as_of: str
    values: NarrowMatrix = field(repr=False)
    ids: np.ndarray = field(repr=False)
    columns: list[str]
    categories: dict[str, list[str]]
    sha256: str = ""  # of the matrix file it was mapped from (empty: built in memory)
    _columns: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of_frame(cls, as_of: str, frame: pd.DataFrame) -> Snapshot:
        """From a frame indexed by user_id (any order)."""
        frame = frame.sort_index()
        categories = {c: sorted(str(v) for v in frame[c].dropna().unique()) for c in frame.columns if _is_text(frame[c])}
        frame = frame[matrix_order(list(frame.columns), set(categories))]
        values = NarrowMatrix.of(_encode(frame, categories), [_frame_dtype(frame[c], categories.get(c)) for c in frame.columns])
        return cls(as_of, values, id_array(frame.index), list(frame.columns), categories)

    @classmethod
    def load(cls, folder: Path) -> Snapshot:
        """Map the snapshot's files read-only once their checksums match the manifest. A snapshot written
        before it carried them is read from its Parquet into memory."""
        manifest = json.loads((folder / "manifest.json").read_text())
        digests = manifest["sha256"]
        files = mapped_files(folder, digests)
        if files is None:
            snapshot = cls.of_frame(manifest["as_of"], pd.read_parquet(_verified(folder, "features.parquet", digests)))
            snapshot.sha256 = digests["features.parquet"]
            return snapshot
        for name in files:
            _verified(folder, name, digests)
        meta = json.loads((folder / COLUMNS_FILE).read_text())
        dtypes = _dtypes(meta)
        # Plain arrays over the maps: numpy's memmap subclass would tag every result computed from them.
        ids = np.load(folder / IDS_FILE, mmap_mode="r").view(np.ndarray)
        blocks = {d: np.load(folder / block_file(d), mmap_mode="r").view(np.ndarray) for d in dict.fromkeys(dtypes)}
        try:
            values = NarrowMatrix(len(ids), dtypes, blocks)
        except ValueError as e:
            raise ArtifactError(f"feature snapshot files disagree on their shape: {e}") from e
        # What derived arrays are keyed by: every file the matrix is read from.
        sha = digests[files[0]] if len(files) == 1 else hashlib.sha256("".join(digests[f] for f in files).encode()).hexdigest()
        return cls(manifest["as_of"], values, ids, meta["columns"], meta["categories"], sha)

    @cached_property
    def position(self) -> dict[str, int]:
        return {c: j for j, c in enumerate(self.columns)}

    @property
    def text_ids(self) -> bool:
        return self.ids.dtype.kind == "U"

    def __contains__(self, column: str) -> bool:
        return column in self.position

    def column(self, name: str) -> np.ndarray:
        """One column for every user, as numbers (a text column's codes); KeyError when absent. Kept
        once read: a column of a row-major matrix is a read of every page of it."""
        if name not in self._columns:
            self._columns[name] = self.values.reader([self.position[name]]).take(slice(None))[:, 0]
        return self._columns[name]

    def at(self, rows: np.ndarray, name: str) -> np.ndarray:
        """One column at some rows."""
        return self.values.reader([self.position[name]]).take(rows)[:, 0]

    @cached_property
    def column_means(self) -> np.ndarray:
        """Each column's mean over the users who have a value, read a block of rows at a time."""
        total, count = np.zeros(len(self.columns)), np.zeros(len(self.columns))
        for start in range(0, len(self.values), CHUNK_ROWS):
            block = self.values.rows(slice(start, start + CHUNK_ROWS))
            known = ~np.isnan(block)
            total += np.where(known, block, 0.0).sum(axis=0)
            count += known.sum(axis=0)
        return np.divide(total, count, out=np.full(len(total), np.nan), where=count > 0)

    def take_frame(self, rows: np.ndarray | slice) -> pd.DataFrame:
        """Snapshot rows as a frame indexed by user_id, text columns as text, numbers as float64."""
        block = self.values.rows(rows)
        out = {}
        for j, c in enumerate(self.columns):
            if c in self.categories:
                codes = block[:, j]
                text = np.asarray(self.categories[c] + [None], dtype=object)
                out[c] = pd.array(text[np.where(np.isnan(codes), len(self.categories[c]), codes).astype(np.intp)],
                                  dtype="string")
            else:
                out[c] = block[:, j]
        return pd.DataFrame(out, index=pd.Index(np.asarray(self.ids[rows]), name="user_id"))

    @cached_property
    def frame(self) -> pd.DataFrame:
        """The whole snapshot as a frame: for offline work; a serving worker reads rows and columns instead."""
        return self.take_frame(slice(None))

    def features_for(self, spec: FeatureSpec) -> FeatureRows:
        """How a model with this spec reads the snapshot's rows."""
        absent = np.array([c not in self.position for c in spec.names], dtype=bool)
        src = np.array([self.position.get(c, 0) for c in spec.names], dtype=np.intp)
        recode = []
        for j, c in enumerate(spec.names):
            if c in spec.categorical and c in self.categories:
                theirs = {v: i for i, v in enumerate(spec.categorical[c])}
                table = np.array([theirs.get(v, np.nan) for v in self.categories[c]], dtype=np.float64)
                if not np.array_equal(table, np.arange(len(table), dtype=np.float64)):
                    recode.append((j, table))
            elif c in self.categories:  # text in the snapshot, a number to the model: none reads as one
                absent[j] = True
        return FeatureRows(self.values, src, absent, tuple(recode))

    def rows(self, user_ids: list) -> tuple[np.ndarray, np.ndarray]:
        """Row positions of requested ids and a mask of those found. An id is found only in the
        warehouse's type: 42 is not "42", in either direction."""
        ids = np.asarray(user_ids)
        if ids.dtype.kind == self.ids.dtype.kind:  # every id of the warehouse's type: the usual call
            return locate(self.ids, ids)
        kind = str if self.text_ids else int
        typed = np.array([type(u) is kind for u in user_ids], dtype=bool)
        ids = np.array([u if ok else kind() for u, ok in zip(user_ids, typed)],
                       dtype=None if self.text_ids else np.int64)
        pos, found = locate(self.ids, ids)
        return pos, found & typed

    def row(self, user_id: int | str) -> int | None:
        """`rows` of one id, as a plain int (None when unknown)."""
        if type(user_id) is not (str if self.text_ids else int):
            return None
        pos, found = locate_one(self.ids, user_id)
        return pos if found else None


def matrix_order(columns: list[str], text: set[str]) -> list[str]:
    """The matrix's column order: the features' numbers, then their text, then what no model reads. It is
    the order a model fitted on the whole snapshot takes them in (scoring.spec.FeatureSpec.fit), so such a
    model's columns are one run of the matrix's, and one user's row a view of it."""
    features = [c for c in columns if c not in NOT_FEATURES]
    return ([c for c in features if c not in text] + [c for c in features if c in text]
            + [c for c in columns if c in NOT_FEATURES])


def _frame_dtype(col: pd.Series, categories: list[str] | None) -> str:
    """The narrowest type that holds a frame column's numbers (a text column's codes) exactly."""
    if categories is not None:
        return narrowest(True, 0, len(categories) - 1)
    if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
        return FLOAT
    x = numbers(col).to_numpy(dtype=np.float64, na_value=np.nan)
    return narrowest(*_extent(x))


def _extent(x: np.ndarray) -> tuple[bool, float, float]:
    """Whether a column's known values are whole numbers, and their least and greatest (inf, -inf: none)."""
    known = x[~np.isnan(x)]
    if not len(known):
        return True, np.inf, -np.inf
    return bool(np.all(known == np.round(known))), float(known.min()), float(known.max())


def _encode(frame: pd.DataFrame, categories: dict[str, list[str]]) -> np.ndarray:
    """A frame's rows as the snapshot's float64 matrix: numbers as numbers, text as codes (NaN: missing)."""
    values = np.empty((len(frame), frame.shape[1]), dtype=np.float64)
    for j, c in enumerate(frame.columns):
        if c in categories:
            codes = pd.Categorical(frame[c].astype("string"), categories=categories[c]).codes.astype(np.float64)
            codes[codes < 0] = np.nan
            values[:, j] = codes
        else:
            values[:, j] = numbers(frame[c]).to_numpy(dtype=np.float64, na_value=np.nan)
    return values


def _encode_arrow(batch: pa.RecordBatch, categories: dict[str, list[str]]) -> np.ndarray:
    """`_encode` of a batch whose number columns are whole numbers or floats, read straight from Arrow (a
    missing value as NaN) rather than through a frame: the same matrix in half the time."""
    values = np.empty((batch.num_rows, batch.num_columns), dtype=np.float64)
    for j, c in enumerate(batch.schema.names):
        if c in categories:
            values[:, j] = _encode(batch.select([c]).to_pandas(), categories)[:, 0]
        else:
            values[:, j] = pc.cast(batch.column(j), pa.float64(), safe=False).to_numpy(zero_copy_only=False)
    return values


def block_file(dtype: str) -> str:
    """The file of the matrix's columns of one type (float64's keeps the name of the one matrix there was)."""
    return VALUES_FILE if dtype == FLOAT else f"snapshot-values-{dtype}.npy"


def _dtypes(meta: dict) -> list[str]:
    return meta.get("dtypes") or [FLOAT] * len(meta["columns"])  # written before the types: one float64 matrix


def mapped_files(folder: Path, digests: dict[str, str]) -> list[str] | None:
    """The files a worker maps (the matrix's blocks, the ids, the columns), None for a snapshot whose
    manifest has no checksums of them (built before it had them, or their writing failed)."""
    if COLUMNS_FILE not in digests or IDS_FILE not in digests:
        return None
    meta = json.loads(_verified(folder, COLUMNS_FILE, digests).read_text())
    files = [block_file(d) for d in dict.fromkeys(_dtypes(meta))]
    return [*files, IDS_FILE, COLUMNS_FILE] if all(f in digests for f in files) else None


def write_mapped(parquet: Path, folder: Path, batch_rows: int = 250_000) -> list[Path]:
    """The mapped files of a feature snapshot's Parquet (user_id and the features), written a batch of
    rows at a time into the files themselves: a 10M-user snapshot as a frame would be its size again in
    memory. A first pass finds each column's type."""
    pf = pq.ParquetFile(parquet)
    text = [c for c in pf.schema_arrow.names if c != "user_id" and not _arrow_number(pf.schema_arrow.field(c).type)]
    columns = matrix_order([c for c in pf.schema_arrow.names if c != "user_id"], set(text))
    categories = {c: sorted(str(v) for v in pc.unique(pf.read(columns=[c]).column(0)).drop_null().to_pylist())
                  for c in text}
    dtypes = _parquet_dtypes(pf, columns, categories, batch_rows)
    ids = id_array(pf.read(columns=["user_id"]).column(0).to_numpy(zero_copy_only=False))
    order = np.argsort(ids, kind="stable")
    in_order = bool(np.all(order == np.arange(len(ids))))
    rank = None if in_order else np.empty(len(ids), dtype=np.intp)
    if rank is not None:
        rank[order] = np.arange(len(ids))
    # Each file is written under a temporary name and renamed over the old one: a process that has the
    # old files mapped (an offline plan, the monitor) keeps reading them whole instead of a truncated file.
    names = [*(block_file(d) for d in dict.fromkeys(dtypes)), IDS_FILE, COLUMNS_FILE]
    partial = {name: folder / f".{name}.{os.getpid()}" for name in names}
    blocks = {d: (np.flatnonzero(np.array(dtypes) == d),
                  np.lib.format.open_memmap(partial[block_file(d)], mode="w+", dtype=d,
                                            shape=(len(ids), dtypes.count(d))))
              for d in dict.fromkeys(dtypes)}
    start = 0
    arrow = all(pa.types.is_integer(t) or pa.types.is_floating(t)
                for c, t in zip(pf.schema_arrow.names, pf.schema_arrow.types) if c in columns and c not in categories)
    for batch in pf.iter_batches(batch_size=batch_rows, columns=columns):
        block = _encode_arrow(batch, categories) if arrow else _encode(batch.to_pandas(), categories)
        where = slice(start, start + len(block)) if rank is None else rank[start:start + len(block)]
        for d, (cols, out) in blocks.items():
            out[where] = pack(block[:, cols], d)
        start += len(block)
    for _, out in blocks.values():
        out.flush()
    del blocks
    with open(partial[IDS_FILE], "wb") as f:
        np.save(f, ids[order])
    partial[COLUMNS_FILE].write_text(json.dumps({"columns": columns, "categories": categories, "dtypes": dtypes,
                                                 "index": "user_id"}))
    for name, path in partial.items():
        os.replace(path, folder / name)
    stale = {block_file(d) for d in (FLOAT, *INTEGERS)} - set(names)
    for name in stale:  # a block of a type this snapshot no longer has
        (folder / name).unlink(missing_ok=True)
    return [folder / name for name in names]


def _parquet_dtypes(pf: pq.ParquetFile, columns: list[str], categories: dict[str, list[str]], batch_rows: int) -> list[str]:
    """Each column's type, from one pass over its values (many counts are stored as doubles)."""
    numeric = [c for c in columns if c not in categories]
    extent = dict.fromkeys(numeric, (True, np.inf, -np.inf))
    for batch in pf.iter_batches(batch_size=batch_rows, columns=numeric):
        for c, array in zip(numeric, batch.columns):
            whole, lo, hi = _extent(pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False))
            extent[c] = (extent[c][0] and whole, min(extent[c][1], lo), max(extent[c][2], hi))
    return [narrowest(True, 0, len(categories[c]) - 1) if c in categories else narrowest(*extent[c]) for c in columns]


def _arrow_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t)


def _verified(folder: Path, name: str, digests: dict[str, str]) -> Path:
    path = folder / name
    if not path.is_file() or file_sha256(path) != digests[name]:
        raise ArtifactError(f"feature snapshot file {name} does not match its manifest checksum")
    return path
