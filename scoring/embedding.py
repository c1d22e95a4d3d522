"""The lookalike's user embedding: how a snapshot row becomes a vector.

Rank-Gauss normalised numeric features plus one-hot categories, L2-normalised, so that inner product is
cosine similarity. `RowEmbedder` embeds snapshot rows straight from the matrix's typed blocks, exactly as
`EmbeddingSpace.embed` does a frame of them, and fast enough to embed a few hundred thousand rows per call.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache

import faiss
import numpy as np
import pandas as pd
from scipy.special import ndtri

from scoring.matrix import INTEGERS
from scoring.snapshot import Snapshot
from scoring.vocabulary import CATEGORICAL, PROTECTED

PROTECTED_NUMERIC = ("age",)
QUANTILES = 101


@dataclass
class EmbeddingSpace:
    """How a snapshot row becomes a vector: quantile grids per numeric feature, categories one-hot; and the
    base's spread of each numeric dimension (for the distinguishing features), set when the index is built."""

    numeric: list[str]
    grids: list[list[float]]
    categorical: dict[str, list[str]]
    spread: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def fit(cls, frame: pd.DataFrame, categories: dict[str, list[str]] | None = None) -> EmbeddingSpace:
        """Grids from the frame (a sample of the base will do); categories from `categories` where given
        (the whole snapshot's: a sample may miss a rare one), else from the frame."""
        numeric = [c for c in frame.columns
                   if c not in CATEGORICAL + PROTECTED and pd.api.types.is_numeric_dtype(frame[c])]
        grids = []
        for c in numeric:
            v = frame[c].to_numpy(dtype=float, na_value=np.nan)
            v = v[np.isfinite(v)]
            grids.append(np.unique(np.quantile(v, np.linspace(0, 1, QUANTILES))).tolist() if len(v) else [0.0])
        known = categories or {}
        cats = {c: list(known[c]) if c in known else sorted(frame[c].dropna().astype(str).unique())
                for c in (*CATEGORICAL, *PROTECTED) if c in frame}
        return cls(numeric, grids, cats)

    @property
    def dims(self) -> list[str]:
        return self.numeric + [f"{c}={v}" for c, vals in self.categorical.items() for v in vals]

    @property
    def protected_dims(self) -> np.ndarray:
        names = self.dims
        return np.array([i for i, d in enumerate(names) if d in PROTECTED_NUMERIC or d.split("=")[0] in PROTECTED],
                        dtype=np.intp)

    @property
    def width(self) -> int:
        """The vectors' length: the dimensions, then zeros up to a multiple of 8, the width faiss's
        scalar quantiser has SIMD code for (1,000 queries of an 8-bit IVF over 300k vectors: 5.9 s
        114 wide, 0.6-1.5 s 120 wide on this loaded box)."""
        return -(-len(self.dims) // 8) * 8

    def embed(self, frame: pd.DataFrame) -> np.ndarray:
        n = len(frame)
        parts = np.zeros((n, self.width), dtype=np.float32)
        for j, (c, grid) in enumerate(zip(self.numeric, self.grids)):
            parts[:, j] = coordinate(grid, frame[c].to_numpy(dtype=float, na_value=np.nan))
        j = len(self.numeric)
        for c, vals in self.categorical.items():
            codes = pd.Categorical(frame[c].astype("string"), categories=vals).codes
            hit = codes >= 0
            parts[np.flatnonzero(hit), j + codes[hit]] = 1.0
            j += len(vals)
        faiss.normalize_L2(parts)
        return parts

    def blind(self, vectors: np.ndarray) -> np.ndarray:
        """Vectors with their protected dimensions zeroed (a copy)."""
        out = np.array(vectors, dtype=np.float32)
        out[:, self.protected_dims] = 0.0
        return out

    def to_dict(self) -> dict:
        return {"numeric": self.numeric, "grids": self.grids, "categorical": self.categorical, "spread": self.spread}

    @classmethod
    def from_dict(cls, d: dict) -> EmbeddingSpace:
        return cls(d["numeric"], d["grids"], d["categorical"], d.get("spread", {}))


def coordinate(grid: list[float], v: np.ndarray) -> np.ndarray:
    """A numeric feature's dimension: its rank-Gauss score on the feature's quantile grid (clipped so the
    extremes do not dominate); 0 where the value is missing."""
    if len(grid) > 1:
        z = ndtri(np.clip(np.interp(v, grid, np.linspace(0, 1, len(grid))), 0.01, 0.99))
    else:
        z = np.zeros(len(v))
    return np.where(np.isfinite(v), z, 0.0)


# Whole-number columns up to this many distinct values are embedded by looking up a table of every value's
# coordinate (int8 and int16: 64k entries, 256 kB): a lookup instead of an interpolation and an inverse
# normal per row, 25 ns of the 30 ns each row's dimension cost.
TABLE_TYPES = ("int8", "int16")
# Rows are embedded independently, so a call of more rows than this embeds slices of them on threads, one per
# core (numpy's gathers and ufuncs release the GIL): a lookalike's re-rank embeds ~240k candidate rows a call.
PARALLEL_ROWS = 50_000


CORES = len(os.sched_getaffinity(0))


@cache
def _threads() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(CORES, thread_name_prefix="embed")


@dataclass(frozen=True)
class _Dims:
    """The space's dimensions one block of the matrix feeds: numeric ones (by table or computed) and one-hots."""

    block: np.ndarray
    offset: int  # the type's least value (NaN's code), which a table's first entry is for
    tabled: tuple[tuple[int, int, np.ndarray], ...] = ()  # (block column, dimension, each value's coordinate)
    computed: tuple[tuple[int, int, list[float], float], ...] = ()  # (block column, dimension, grid, coordinate of 0)
    onehot: tuple[tuple[int, np.ndarray], ...] = ()  # (block column, snapshot code → dimension, −1: none)


class RowEmbedder:
    """Snapshot rows' vectors, bit for bit those of `space.embed(snapshot.take_frame(rows))`, read from the
    snapshot's typed blocks without building a frame."""

    def __init__(self, space: EmbeddingSpace, snapshot: Snapshot):
        self.width = space.width
        values = snapshot.values
        per: dict[str, dict[str, list]] = {name: {"tabled": [], "computed": [], "onehot": []} for name in values.blocks}
        for j, (c, grid) in enumerate(zip(space.numeric, space.grids)):
            col = snapshot.position[c]
            dtype, local = values.dtypes[col], int(values.slot[col])
            if dtype in TABLE_TYPES:
                info = np.iinfo(dtype)
                every = np.arange(info.min, info.max + 1, dtype=np.float64)
                every[0] = np.nan  # the type's least value stands for NaN
                per[dtype]["tabled"].append((local, j, coordinate(grid, every).astype(np.float32)))
            else:
                per[dtype]["computed"].append((local, j, grid, float(coordinate(grid, np.zeros(1))[0])))
        dim = len(space.numeric)
        for c, vals in space.categorical.items():
            col = snapshot.position[c]
            at = {v: dim + i for i, v in enumerate(vals)}
            codes = np.array([at.get(v, -1) for v in snapshot.categories[c]], dtype=np.intp)
            per[values.dtypes[col]]["onehot"].append((int(values.slot[col]), codes))
            dim += len(vals)
        self.blocks = tuple(_Dims(values.blocks[name], int(np.iinfo(name).min) if name in INTEGERS else 0,
                                  *(tuple(p[k]) for k in ("tabled", "computed", "onehot")))
                            for name, p in per.items() if any(p.values()))

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) < PARALLEL_ROWS or CORES < 2:
            return self._embed(rows)
        return np.concatenate(list(_threads().map(self._embed, np.array_split(rows, CORES))))

    def _embed(self, rows: np.ndarray) -> np.ndarray:
        # Dimension-major while it is filled: each dimension's values, and each block column's, are contiguous.
        out = np.zeros((self.width, len(rows)), dtype=np.float32)
        for b in self.blocks:
            part = np.ascontiguousarray(np.take(b.block, rows, axis=0).T)
            for local, j, table in b.tabled:
                np.take(table, part[local].astype(np.intp) - b.offset, out=out[j])
            for local, j, grid, at_zero in b.computed:
                out[j] = _sparse_coordinate(grid, at_zero, _as_float(part[local], b.offset))
            for local, codes in b.onehot:
                v = _as_float(part[local], b.offset)
                known = np.flatnonzero(np.isfinite(v))
                dims = codes[v[known].astype(np.intp)]
                hit = dims >= 0
                out[dims[hit], known[hit]] = 1.0
        out = np.ascontiguousarray(out.T)
        faiss.normalize_L2(out)
        return out


def _sparse_coordinate(grid: list[float], at_zero: float, v: np.ndarray) -> np.ndarray:
    """`coordinate`, computed only for the values other than 0 (most of most columns' values: counts,
    amounts and rates of users who did nothing) and for missing ones taken as 0, the same numbers."""
    z = np.where(np.isfinite(v), at_zero, 0.0)
    other = np.flatnonzero(np.isfinite(v) & (v != 0))
    z[other] = coordinate(grid, v[other])
    return z


def _as_float(values: np.ndarray, nan_code: int) -> np.ndarray:
    """A block column as float64, its type's NaN code as NaN."""
    out = values.astype(np.float64)
    if values.dtype.kind == "i":
        out[values == nan_code] = np.nan
    return out
