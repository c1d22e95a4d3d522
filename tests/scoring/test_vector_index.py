"""The lookalike index's parts on small synthetic vectors: scans decode every row once, the neighbour
vote counts what it says, blinding removes protected dimensions."""

from __future__ import annotations

import faiss
import numpy as np

from scoring.embedding import EmbeddingSpace
from scoring.lookalike import neighbour_votes
from scoring.thresholds import EXACT_INDEX_BELOW
from scoring.vector_index import new_index, scan


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    faiss.normalize_L2(x)
    return x


def _low_rank(n: int, d: int, rank: int, seed: int = 0) -> np.ndarray:
    """Unit vectors near a rank-`rank` subspace, off-centre like the embedding (its one-hot and clipped parts)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, rank)) @ rng.normal(size=(rank, d)) + 0.05 * rng.normal(size=(n, d)) + 1.0
    return _unit(x)


def test_small_base_is_exact_and_its_scan_returns_the_vectors():
    x = _low_rank(1000, 12, 4)
    index = new_index(len(x), 12, x)
    assert isinstance(index, faiss.IndexFlatIP) and 1000 < EXACT_INDEX_BELOW
    index.add(x)
    rows, vectors = map(np.concatenate, zip(*scan(index, block=300)))
    assert np.array_equal(rows, np.arange(1000))
    assert np.array_equal(vectors, x)


def test_ivf_scan_decodes_each_row_once_within_quantisation():
    x = _low_rank(5000, 16, 5)
    index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(16), 16, 20, faiss.ScalarQuantizer.QT_8bit,
                                          faiss.METRIC_INNER_PRODUCT)
    index.train(x)
    index.add(x)
    rows, vectors = map(np.concatenate, zip(*scan(index)))
    assert np.array_equal(np.sort(rows), np.arange(5000)), "every row exactly once"
    error = np.abs(vectors - x[rows]).max()
    assert error < 0.02, f"8-bit codes decode within {error:.4f}"


def test_neighbour_votes_sum_each_rows_seeds_over_the_seed_count():
    sims = np.array([[0.9, 0.5, 0.1], [0.9, 0.5, -0.7]], dtype=np.float32)
    nbrs = np.array([[4, 2, 7], [2, 4, -1]])  # -1: faiss found no further neighbour
    allowed = np.ones(10, dtype=bool)
    allowed[7] = False
    rows, score = neighbour_votes(sims, nbrs, allowed, n_seeds=2, k=5)
    assert rows.tolist() == [2, 4]  # both (0.9 + 0.5) / 2: a tie, in row order; row 7 is not allowed
    assert np.allclose(score, [0.7, 0.7])
    rows, _ = neighbour_votes(sims, nbrs, allowed, n_seeds=2, k=1)
    assert rows.tolist() == [2]
    sims[1, 2], nbrs[1, 2] = -0.9, 3
    rows, _ = neighbour_votes(sims, nbrs, allowed, n_seeds=2, k=5)
    assert 3 not in rows, "a row whose votes sum to <= 0 is left to the fallback"


def test_blind_zeroes_only_the_protected_dimensions():
    space = EmbeddingSpace(["age", "income"], [[0.0, 1.0], [0.0, 1.0]], {"gender": ["F", "M"]})
    assert space.protected_dims.tolist() == [0, 2, 3]
    x = _low_rank(500, 4, 3)
    blinded = space.blind(x)
    assert np.array_equal(blinded[:, [0, 2, 3]], np.zeros((500, 3)))
    assert np.array_equal(blinded[:, 1], x[:, 1])
    assert not np.array_equal(x[:, 0], blinded[:, 0]), "a copy: the vectors given are left as they were"
