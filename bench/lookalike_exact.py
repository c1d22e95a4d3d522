"""The exact search a served lookalike is measured against: the same seeds' votes (scoring.lookalike's rule)
over each seed's true nearest neighbours in the full-precision, full-dimension embedding, found by a flat
search of the base embedded a block of rows at a time (never the whole 10M-user embedding at once)."""

from __future__ import annotations

import faiss
import numpy as np

from scoring.lookalike import Lookalike, neighbour_votes, neighbours_per_seed

BLOCK_ROWS = 500_000


def exact_rank(lk: Lookalike, seed_rows: np.ndarray, k: int, allowed: np.ndarray) -> np.ndarray:
    """The top-k rows of the exact search (rows its neighbours reach; no fallback ranking)."""
    queries = lk.embed(seed_rows)
    per_seed = neighbours_per_seed(k, len(seed_rows))
    best_sims = np.full((len(queries), per_seed), -np.inf, dtype=np.float32)
    best_rows = np.full((len(queries), per_seed), -1, dtype=np.int64)
    n = len(lk.user_ids)
    for start in range(0, n, BLOCK_ROWS):
        flat = faiss.IndexFlatIP(queries.shape[1])
        flat.add(lk.embed(np.arange(start, min(start + BLOCK_ROWS, n))))
        sims, rows = flat.search(queries, min(per_seed, flat.ntotal))
        sims, rows = np.hstack([best_sims, sims]), np.hstack([best_rows, np.where(rows >= 0, rows + start, -1)])
        keep = np.argsort(-sims, axis=1, kind="stable")[:, :per_seed]
        best_sims, best_rows = np.take_along_axis(sims, keep, 1), np.take_along_axis(rows, keep, 1)
    return neighbour_votes(best_sims, best_rows, allowed, len(seed_rows), k)[0]


def recall_vs_exact(lk: Lookalike, seed_rows: np.ndarray, k: int) -> float:
    """Share of the exact search's top k that the served index's ranking returns (seeds excluded, as served)."""
    allowed = np.ones(len(lk.user_ids), dtype=bool)
    allowed[seed_rows] = False
    served, _ = lk.rank(seed_rows, k, allowed, protected_off=False)
    exact = exact_rank(lk, seed_rows, k, allowed)
    return float(np.isin(exact, served).mean())
