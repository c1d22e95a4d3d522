"""Lookalike audiences: a user embedding kept with the snapshot, a faiss index over it, and expansion.

The embedding is rank-Gauss normalised snapshot features plus one-hot categories, L2-normalised,
so inner product is cosine similarity. Protected attributes (age, gender) are their own
dimensions: a credit offer zeroes them in the query, so they take no part in the similarity.
The index is exact (IndexFlatIP) below EXACT_INDEX_BELOW users and IVF above it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import faiss
import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import ndtri

from scoring.snapshot import Snapshot, id_array, locate
from scoring.thresholds import EXACT_INDEX_BELOW, IVF_NPROBE
from scoring.vocabulary import CATEGORICAL, PROTECTED

PROTECTED_NUMERIC = ("age",)
QUANTILES = 101


@dataclass
class EmbeddingSpace:
    """How a snapshot row becomes a vector: quantile grids per numeric feature, categories one-hot."""

    numeric: list[str]
    grids: list[list[float]]
    categorical: dict[str, list[str]]

    @classmethod
    def fit(cls, frame: pd.DataFrame) -> EmbeddingSpace:
        numeric = [c for c in frame.columns
                   if c not in CATEGORICAL + PROTECTED and pd.api.types.is_numeric_dtype(frame[c])]
        grids = []
        for c in numeric:
            v = frame[c].to_numpy(dtype=float, na_value=np.nan)
            v = v[np.isfinite(v)]
            grids.append(np.unique(np.quantile(v, np.linspace(0, 1, QUANTILES))).tolist() if len(v) else [0.0])
        cats = {c: sorted(frame[c].dropna().astype(str).unique()) for c in (*CATEGORICAL, *PROTECTED) if c in frame}
        return cls(numeric, grids, cats)

    @property
    def dims(self) -> list[str]:
        return self.numeric + [f"{c}={v}" for c, vals in self.categorical.items() for v in vals]

    @property
    def protected_dims(self) -> np.ndarray:
        names = self.dims
        return np.array([i for i, d in enumerate(names) if d in PROTECTED_NUMERIC or d.split("=")[0] in PROTECTED])

    def embed(self, frame: pd.DataFrame) -> np.ndarray:
        n = len(frame)
        parts = np.zeros((n, len(self.dims)), dtype=np.float32)
        for j, (c, grid) in enumerate(zip(self.numeric, self.grids)):
            v = frame[c].to_numpy(dtype=float, na_value=np.nan)
            if len(grid) > 1:
                u = np.interp(v, grid, np.linspace(0, 1, len(grid)))
                z = ndtri(np.clip(u, 0.01, 0.99))  # rank-Gauss, clipped so the extremes do not dominate
            else:
                z = np.zeros(n)
            parts[:, j] = np.where(np.isfinite(v), z, 0.0)
        j = len(self.numeric)
        for c, vals in self.categorical.items():
            codes = pd.Categorical(frame[c].astype("string"), categories=vals).codes
            hit = codes >= 0
            parts[np.flatnonzero(hit), j + codes[hit]] = 1.0
            j += len(vals)
        faiss.normalize_L2(parts)
        return parts

    def to_dict(self) -> dict:
        return {"numeric": self.numeric, "grids": self.grids, "categorical": self.categorical}

    @classmethod
    def from_dict(cls, d: dict) -> EmbeddingSpace:
        return cls(d["numeric"], d["grids"], d["categorical"])


def build_index(vectors: np.ndarray) -> faiss.Index:
    n, d = vectors.shape
    if n < EXACT_INDEX_BELOW:
        index = faiss.IndexFlatIP(d)
    else:
        nlist = int(4 * math.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = vectors[np.random.default_rng(0).choice(n, min(n, 50 * nlist), replace=False)]
        index.train(sample)
        index.nprobe = IVF_NPROBE
    index.add(vectors)
    return index


@dataclass
class Expansion:
    ids: np.ndarray
    similarity: np.ndarray
    recall_heldout: float | None = None
    recall_random: float | None = None
    distinguishing: list[dict] = field(default_factory=list)


@dataclass
class Lookalike:
    """The embedding of every snapshot user and the index over it; rows follow `user_ids`."""

    space: EmbeddingSpace
    user_ids: np.ndarray
    vectors: np.ndarray
    index: faiss.Index

    @classmethod
    def build(cls, frame: pd.DataFrame, space: EmbeddingSpace | None = None) -> Lookalike:
        space = space or EmbeddingSpace.fit(frame)
        vectors = space.embed(frame)
        return cls(space, id_array(frame.index), vectors, build_index(vectors))

    def save(self, folder: Path) -> dict[str, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = {"space": folder / "space.json", "index": folder / "index.faiss",
                 "user_ids": folder / "user_ids.npy", "vectors": folder / "vectors.npy"}
        paths["space"].write_text(json.dumps(self.space.to_dict()))
        faiss.write_index(self.index, str(paths["index"]))
        np.save(paths["user_ids"], self.user_ids)
        np.save(paths["vectors"], self.vectors)
        return paths

    @classmethod
    def load(cls, folder: Path) -> Lookalike:
        space = EmbeddingSpace.from_dict(json.loads((folder / "space.json").read_text()))
        # Mapped, not read: every worker's index and vectors are then the page cache's one copy (faiss maps
        # an IVF index's lists; a flat index, below EXACT_INDEX_BELOW users, is read as before).
        index = faiss.read_index(str(folder / "index.faiss"), faiss.IO_FLAG_MMAP_IFC)
        if isinstance(index, faiss.IndexIVF):
            index.nprobe = IVF_NPROBE
        vectors = np.load(folder / "vectors.npy", mmap_mode="r").view(np.ndarray)
        return cls(space, np.load(folder / "user_ids.npy", mmap_mode="r").view(np.ndarray), vectors, index)

    def rows(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return locate(self.user_ids, ids)

    def rank(self, seed_rows: np.ndarray, k: int, allowed: np.ndarray, protected_off: bool,
             method: str = "embedding") -> tuple[np.ndarray, np.ndarray]:
        if method == "classifier":
            return self._rank_pu(seed_rows, k, allowed, protected_off)
        return self._rank_knn(seed_rows, k, allowed, protected_off)

    def _rank_pu(self, seed_rows: np.ndarray, k: int, allowed: np.ndarray, protected_off: bool) -> tuple[np.ndarray, np.ndarray]:
        """Seed vs population (positive-unlabelled): a classifier of seeds against a random sample of
        everyone else; its score ranks how seed-like each user is."""
        cols = np.setdiff1d(np.arange(self.vectors.shape[1]), self.space.protected_dims if protected_off else [])
        rng = np.random.default_rng(0)
        others = np.setdiff1d(np.arange(len(self.user_ids)), seed_rows)
        unlabelled = rng.choice(others, min(len(others), 20 * len(seed_rows)), replace=False)
        rows = np.concatenate([seed_rows, unlabelled])
        y = np.r_[np.ones(len(seed_rows)), np.zeros(len(unlabelled))]
        params = {"objective": "binary", "learning_rate": 0.1, "num_leaves": 15, "min_data_in_leaf": 20,
                  "verbose": -1, "num_threads": 1, "seed": 0}
        booster = lgb.train(params, lgb.Dataset(self.vectors[np.ix_(rows, cols)], y), 100)
        score = booster.predict(self.vectors[:, cols], num_threads=1)
        score[~allowed] = -np.inf
        top = np.argpartition(-score, min(k, len(score) - 1))[:k]
        top = top[np.isfinite(score[top])]
        top = top[np.argsort(-score[top], kind="stable")]
        return top, score[top]

    def _rank_knn(self, seed_rows: np.ndarray, k: int, allowed: np.ndarray, protected_off: bool) -> tuple[np.ndarray, np.ndarray]:
        """Top-k allowed rows by their mean similarity to the seeds, counting a seed only where the
        row is among that seed's nearest neighbours (0 elsewhere), which is the score returned.

        Each seed votes for its neighbours with its similarity, so dense regions of the seed
        outweigh a single odd seed. Rows no seed reaches score 0 and follow, in order of cosine to
        the seeds' centroid, so the score never rises down the ranking.
        """
        queries = self.vectors[seed_rows].copy()
        if protected_off and len(self.space.protected_dims):
            queries[:, self.space.protected_dims] = 0.0
        per_seed = int(min(2048, max(32, math.ceil(3 * k / len(seed_rows)))))
        sims, nbrs = self.index.search(queries, per_seed)
        ok = (nbrs >= 0)
        nbrs, sims = nbrs[ok], sims[ok]
        ok = allowed[nbrs]
        score = np.bincount(nbrs[ok], weights=sims[ok], minlength=len(self.user_ids)) / len(seed_rows)
        hit = np.flatnonzero(score > 0)
        order = hit[np.argsort(-score[hit], kind="stable")][:k]
        if len(order) < k:
            sim_all = self.vectors @ queries.mean(axis=0)
            sim_all[~allowed] = -np.inf
            sim_all[order] = -np.inf
            rest = np.argpartition(-sim_all, min(k - len(order), len(sim_all) - 1))[: k - len(order)]
            rest = rest[np.isfinite(sim_all[rest])]
            order = np.concatenate([order, rest[np.argsort(-sim_all[rest], kind="stable")]])
        return order, np.maximum(score[order], 0.0)

    @cached_property
    def _numeric_spread(self) -> tuple[np.ndarray, np.ndarray]:
        """The base's mean and standard deviation of each numeric dimension (one pass over every vector)."""
        numeric = self.vectors[:, : len(self.space.numeric)]
        return numeric.mean(axis=0), numeric.std(axis=0) + 1e-9

    def distinguishing(self, snapshot: Snapshot, seed_rows: np.ndarray, top: int = 5) -> list[dict]:
        """Features whose seed mean differs most from the base, in base standard deviations."""
        seed_mean = self.vectors[seed_rows, : len(self.space.numeric)].mean(axis=0)
        base_mean, base_sd = self._numeric_spread
        smd = (seed_mean - base_mean) / base_sd
        out = []
        for j in np.argsort(-np.abs(smd))[:top]:
            name = self.space.numeric[j]
            out.append({"feature": name, "seed_mean": round(float(np.nanmean(snapshot.at(seed_rows, name))), 4),
                        "base_mean": round(float(snapshot.column_means[snapshot.position[name]]), 4),
                        "std_diff": round(float(smd[j]), 3)})
        return out


def expand(lk: Lookalike, snapshot: Snapshot, seed_rows: np.ndarray, k: int, allowed: np.ndarray,
           exclude_seeds: bool = True, protected_off: bool = False, method: str = "embedding",
           holdout: float = 0.2, seed: int = 0) -> Expansion:
    """Expand from the seeds; the self-check re-runs on 80% of them and counts the held-out 20% recovered."""
    allowed = allowed.copy()
    if exclude_seeds:
        allowed[seed_rows] = False
    order, sim = lk.rank(seed_rows, k, allowed, protected_off, method)
    result = Expansion(lk.user_ids[order], sim, distinguishing=lk.distinguishing(snapshot, seed_rows))

    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(seed_rows)
    n_out = max(1, int(round(len(seed_rows) * holdout)))
    held, kept = shuffled[:n_out], shuffled[n_out:]
    check_allowed = allowed.copy()
    check_allowed[held] = True
    check_allowed[kept] = False
    check_order, _ = lk.rank(kept, k, check_allowed, protected_off, method)
    result.recall_heldout = float(np.isin(held, check_order).mean())
    result.recall_random = float(min(1.0, k / max(int(check_allowed.sum()), 1)))
    return result
