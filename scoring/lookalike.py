"""Lookalike audiences: a user embedding of the snapshot's rows, a faiss index over it, and expansion.

The embedding is rank-Gauss normalised snapshot features plus one-hot categories, L2-normalised,
so inner product is cosine similarity. Protected attributes (age, gender) are their own
dimensions: a credit offer zeroes them in the query, so they take no part in the similarity.
Above EXACT_INDEX_BELOW users the index holds the vectors 8-bit quantised (scoring/vector_index.py);
it is the only stored copy of them: a seed's vector is embedded again from its snapshot row, and so are
the candidates the index finds, whose exact similarities then choose each seed's neighbours.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import faiss
import lightgbm as lgb
import numpy as np

from scoring.embedding import EmbeddingSpace, RowEmbedder
from scoring.snapshot import CHUNK_ROWS, Snapshot, locate
from scoring.thresholds import RERANK_DEPTH, SPACE_SAMPLE_ROWS
from scoring.vector_index import new_index, read_index, scan

def ids_digest(ids: np.ndarray) -> str:
    """What ties an index to its snapshot: the digest of the snapshot's sorted ids (type included)."""
    ids = np.ascontiguousarray(ids)
    return hashlib.sha256(ids.dtype.str.encode() + memoryview(ids).cast("B")).hexdigest()


def neighbours_per_seed(k: int, n_seeds: int) -> int:
    """How many neighbours each seed votes for: enough that the votes reach ~3k rows between them."""
    return int(min(2048, max(32, math.ceil(3 * k / n_seeds))))


def neighbour_votes(sims: np.ndarray, nbrs: np.ndarray, allowed: np.ndarray, n_seeds: int,
                    k: int) -> tuple[np.ndarray, np.ndarray]:
    """The top-k allowed rows by their seeds' summed similarity over n_seeds (a seed counts where the row
    is among its neighbours), best first, ties in row order; rows scoring <= 0 are left out. Only the rows
    reached are counted: an array over the whole base would be 80 MB a call at 10M users."""
    reached = nbrs >= 0
    nbrs, sims = nbrs[reached], sims[reached]
    ok = allowed[nbrs]
    rows, inverse = np.unique(nbrs[ok], return_inverse=True)
    score = np.bincount(inverse, weights=sims[ok], minlength=len(rows)) / n_seeds
    keep = score > 0
    rows, score = rows[keep], score[keep]
    order = np.argsort(-score, kind="stable")[:k]
    return rows[order], score[order]


@dataclass
class Neighbours:
    """Each seed's nearest rows (-1: none), best first, their similarities, and the seeds' query vectors."""

    queries: np.ndarray
    sims: np.ndarray
    rows: np.ndarray

    def of(self, seeds: np.ndarray, per_seed: int) -> Neighbours:
        """These seeds' (positions) first per_seed neighbours: a smaller search's answer, up to ties."""
        return Neighbours(self.queries[seeds], self.sims[seeds, :per_seed], self.rows[seeds, :per_seed])


@dataclass
class Expansion:
    ids: np.ndarray
    similarity: np.ndarray
    recall_heldout: float | None = None
    recall_random: float | None = None
    distinguishing: list[dict] = field(default_factory=list)


@dataclass
class Lookalike:
    """The index over the embedding of every row of `snapshot`; the index's row numbers are its rows."""

    space: EmbeddingSpace
    snapshot: Snapshot
    index: faiss.Index
    ids_sha256: str = ""

    @classmethod
    def build(cls, snapshot: Snapshot, sample_rows: int = SPACE_SAMPLE_ROWS) -> Lookalike:
        """Fit the space on a sample of rows, then embed and add the base a chunk at a time: a 10M-user
        snapshot as one frame would be ~10 GB, its float32 embedding 4.5 GB."""
        n = len(snapshot.ids)
        rng = np.random.default_rng(0)
        sample = np.sort(rng.choice(n, sample_rows, replace=False)) if n > sample_rows else slice(None)
        frame = snapshot.take_frame(sample)
        space = EmbeddingSpace.fit(frame, snapshot.categories)
        vectors = space.embed(frame)
        del frame
        index = new_index(n, space.width, vectors)
        del vectors
        m = len(space.numeric)
        total, squares, raw, known = np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m)
        for start in range(0, n, CHUNK_ROWS):
            block = snapshot.take_frame(slice(start, start + CHUNK_ROWS))
            v = space.embed(block)
            numeric = v[:, :m].astype(np.float64)
            total += numeric.sum(axis=0)
            squares += (numeric ** 2).sum(axis=0)
            values = block[space.numeric].to_numpy(dtype=float, na_value=np.nan)
            raw += np.nansum(values, axis=0)
            known += np.isfinite(values).sum(axis=0)
            index.add(v)
        mean = total / n
        space.spread = {"mean": mean.tolist(), "sd": (np.sqrt(np.maximum(squares / n - mean ** 2, 0)) + 1e-9).tolist(),
                        "feature_mean": np.divide(raw, known, out=np.full(m, np.nan), where=known > 0).tolist()}
        return cls(space, snapshot, index, ids_digest(snapshot.ids))

    def save(self, folder: Path) -> dict[str, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = {"space": folder / "space.json", "index": folder / "index.faiss"}
        for stale in ("vectors.npy", "user_ids.npy"):  # an older build's copies, which import-models would carry on
            (folder / stale).unlink(missing_ok=True)
        paths["space"].write_text(json.dumps({**self.space.to_dict(), "ids_sha256": self.ids_sha256}))
        faiss.write_index(self.index, str(paths["index"]))
        return paths

    @classmethod
    def load(cls, folder: Path, snapshot: Snapshot) -> Lookalike:
        meta = json.loads((folder / "space.json").read_text())
        return cls(EmbeddingSpace.from_dict(meta), snapshot, read_index(str(folder / "index.faiss")),
                   meta.get("ids_sha256", ""))

    def built_on(self, snapshot: Snapshot) -> bool:
        return self.index.ntotal == len(snapshot.ids) and self.ids_sha256 == ids_digest(snapshot.ids)

    @property
    def user_ids(self) -> np.ndarray:
        return self.snapshot.ids

    def rows(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return locate(self.user_ids, ids)

    @cached_property
    def embed(self) -> RowEmbedder:
        return RowEmbedder(self.space, self.snapshot)

    @property
    def approximate(self) -> bool:
        return not isinstance(self.index, faiss.IndexFlat)

    def queries(self, rows: np.ndarray, protected_off: bool) -> np.ndarray:
        """The rows' vectors, embedded again from the snapshot (full precision, as no stored copy is)."""
        vectors = self.embed(rows)
        return self.space.blind(vectors) if protected_off else vectors

    def rank(self, seed_rows: np.ndarray, k: int, allowed: np.ndarray, protected_off: bool,
             method: str = "embedding") -> tuple[np.ndarray, np.ndarray]:
        if method == "classifier":
            return self._rank_pu(seed_rows, k, allowed, protected_off)
        return self._rank_knn(seed_rows, k, allowed, protected_off)

    def _rank_pu(self, seed_rows: np.ndarray, k: int, allowed: np.ndarray, protected_off: bool) -> tuple[np.ndarray, np.ndarray]:
        """Seed vs population (positive-unlabelled): a classifier of seeds against a random sample of
        everyone else; its score ranks how seed-like each user is. The base is scored a block of
        decoded vectors at a time."""
        rng = np.random.default_rng(0)
        others = np.setdiff1d(np.arange(len(self.user_ids)), seed_rows)
        unlabelled = rng.choice(others, min(len(others), 20 * len(seed_rows)), replace=False)
        rows = np.concatenate([seed_rows, unlabelled])
        y = np.r_[np.ones(len(seed_rows)), np.zeros(len(unlabelled))]
        params = {"objective": "binary", "learning_rate": 0.1, "num_leaves": 15, "min_data_in_leaf": 20,
                  "verbose": -1, "num_threads": 1, "seed": 0}
        booster = lgb.train(params, lgb.Dataset(self.queries(rows, protected_off), y), 100)
        score = np.full(len(self.user_ids), -np.inf)
        for block, vectors in scan(self.index):
            score[block] = booster.predict(self.space.blind(vectors) if protected_off else vectors, num_threads=1)
        score[~allowed] = -np.inf
        top = np.argpartition(-score, min(k, len(score) - 1))[:k]
        top = top[np.isfinite(score[top])]
        top = top[np.argsort(-score[top], kind="stable")]
        return top, score[top]

    def neighbours(self, seed_rows: np.ndarray, per_seed: int, protected_off: bool,
                   candidates: int | None = None) -> Neighbours:
        """Each seed's per_seed nearest rows. An approximate index is asked for `candidates` (default
        RERANK_DEPTH times per_seed), and their exact similarities (embedded again) choose among them."""
        queries = self.queries(seed_rows, protected_off)
        if not self.approximate:
            return Neighbours(queries, *self.index.search(queries, per_seed))
        _, rows = self.index.search(queries, max(per_seed, candidates or math.ceil(per_seed * RERANK_DEPTH)))
        sims = self.similarities(queries, rows)
        keep = np.argsort(-sims, axis=1, kind="stable")[:, :per_seed]
        return Neighbours(queries, np.take_along_axis(sims, keep, 1), np.take_along_axis(rows, keep, 1))

    def similarities(self, queries: np.ndarray, rows: np.ndarray, block: int = 100) -> np.ndarray:
        """Each query's exact inner product with its row of candidates (−inf where a row is −1). A query's
        protected dimensions, if blinded, are zero: the candidates' need no blinding."""
        reached = np.unique(rows[rows >= 0])
        vectors = self.embed(reached)
        at = np.searchsorted(reached, np.maximum(rows, 0))
        sims = np.empty(rows.shape, dtype=np.float32)
        for start in range(0, len(queries), block):  # a block of seeds at a time: their candidates' vectors gathered
            q = slice(start, start + block)
            sims[q] = np.einsum("ij,ikj->ik", queries[q], vectors[at[q]])
        sims[rows < 0] = -np.inf
        return sims

    def vote(self, nb: Neighbours, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-k allowed rows by their mean similarity to the seeds, counting a seed only where the
        row is among that seed's nearest neighbours (0 elsewhere), which is the score returned.

        Each seed votes for its neighbours with its similarity, so dense regions of the seed
        outweigh a single odd seed. Rows no seed reaches score 0 and follow, in order of cosine to
        the seeds' centroid, so the score never rises down the ranking.
        """
        order, score = neighbour_votes(nb.sims, nb.rows, allowed, len(nb.queries), k)
        if len(order) < k:
            order = np.concatenate([order, self._nearest_centroid(nb.queries.mean(axis=0), k - len(order), allowed, order)])
            score = np.r_[score, np.zeros(len(order) - len(score))]
        return order, score

    def _rank_knn(self, seed_rows: np.ndarray, k: int, allowed: np.ndarray, protected_off: bool) -> tuple[np.ndarray, np.ndarray]:
        return self.vote(self.neighbours(seed_rows, neighbours_per_seed(k, len(seed_rows)), protected_off), k, allowed)

    def _nearest_centroid(self, centroid: np.ndarray, m: int, allowed: np.ndarray, taken: np.ndarray) -> np.ndarray:
        """The m allowed rows not yet taken closest to the centroid, best first: one pass over the index."""
        sim_all = np.full(len(self.user_ids), -np.inf, dtype=np.float32)
        for block, vectors in scan(self.index):
            sim_all[block] = vectors @ centroid
        sim_all[~allowed] = -np.inf
        sim_all[taken] = -np.inf
        rest = np.argpartition(-sim_all, min(m, len(sim_all) - 1))[:m]
        rest = rest[np.isfinite(sim_all[rest])]
        return rest[np.argsort(-sim_all[rest], kind="stable")]

    def distinguishing(self, seed_rows: np.ndarray, top: int = 5) -> list[dict]:
        """Features whose seed mean differs most from the base, in base standard deviations (the base's
        spread was measured when the index was built, so no call reads every row)."""
        m = len(self.space.numeric)
        seed_mean = self.embed(seed_rows)[:, :m].mean(axis=0)
        spread = self.space.spread
        smd = (seed_mean - np.asarray(spread["mean"])) / np.asarray(spread["sd"])
        out = []
        for j in np.argsort(-np.abs(smd))[:top]:
            name = self.space.numeric[j]
            out.append({"feature": name, "seed_mean": round(float(np.nanmean(self.snapshot.at(seed_rows, name))), 4),
                        "base_mean": round(float(spread["feature_mean"][j]), 4), "std_diff": round(float(smd[j]), 3)})
        return out


def expand(lk: Lookalike, seed_rows: np.ndarray, k: int, allowed: np.ndarray,
           exclude_seeds: bool = True, protected_off: bool = False, method: str = "embedding",
           holdout: float = 0.2, seed: int = 0) -> Expansion:
    """Expand from the seeds; the self-check re-runs on 80% of them and counts the held-out 20% recovered.
    By embedding, one search serves both: the check's seeds are the first's, each with a few more neighbours
    (a second search was half of a 10M-user call's time)."""
    allowed = allowed.copy()
    if exclude_seeds:
        allowed[seed_rows] = False
    shuffled = np.random.default_rng(seed).permutation(len(seed_rows))
    n_out = max(1, int(round(len(seed_rows) * holdout)))
    held, kept = seed_rows[shuffled[:n_out]], shuffled[n_out:]
    check_allowed = allowed.copy()
    check_allowed[held] = True
    check_allowed[seed_rows[kept]] = False
    if method == "embedding":
        per_seed, per_kept = neighbours_per_seed(k, len(seed_rows)), neighbours_per_seed(k, len(kept))
        # Candidates for the re-rank as deep as the full seed list needs: the check's own lists, a few more
        # neighbours each for fewer seeds, are taken from the same pool.
        nb = lk.neighbours(seed_rows, max(per_seed, per_kept), protected_off, math.ceil(per_seed * RERANK_DEPTH))
        order, sim = lk.vote(nb.of(np.arange(len(seed_rows)), per_seed), k, allowed)
        check_order, _ = lk.vote(nb.of(kept, per_kept), k, check_allowed)
    else:
        order, sim = lk.rank(seed_rows, k, allowed, protected_off, method)
        check_order, _ = lk.rank(seed_rows[kept], k, check_allowed, protected_off, method)
    result = Expansion(lk.user_ids[order], sim, distinguishing=lk.distinguishing(seed_rows))
    result.recall_heldout = float(np.isin(held, check_order).mean())
    result.recall_random = float(min(1.0, k / max(int(check_allowed.sum()), 1)))
    return result
