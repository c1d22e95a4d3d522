"""The embedding read straight from the snapshot's typed blocks equals the frame's, and an approximate index's
candidates re-ranked by exact similarity recover an exact search's neighbours."""

from __future__ import annotations

import faiss
import numpy as np
import pandas as pd
import pytest

from scoring import embedding
from scoring.embedding import EmbeddingSpace, RowEmbedder
from scoring.lookalike import Lookalike
from scoring.snapshot import Snapshot

N = 6000


@pytest.fixture(scope="module")
def snapshot() -> Snapshot:
    """Columns of every stored type, with missing values, and text the space has not all seen."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({
        "flag": rng.integers(0, 2, N).astype(float),  # int8
        "count": rng.poisson(40, N) * 30.0,  # int16
        "amount": rng.integers(0, 10**6, N).astype(float),  # int32
        "ratio": np.where(rng.random(N) < 0.6, 0.0, rng.random(N)),  # float64, mostly 0 as most rates are
        "age": rng.integers(18, 80, N).astype(float),
        "acquisition_channel": rng.choice(["ads", "invite", "organic", "partner"], N),
        "gender": rng.choice(["F", "M"], N),
    }, index=pd.Index(rng.permutation(N) * 3 + 5, name="user_id"))
    for c in ("count", "amount", "ratio"):
        frame.loc[frame.sample(frac=0.1, random_state=1).index, c] = np.nan
    frame.loc[frame.sample(frac=0.05, random_state=2).index, "acquisition_channel"] = None
    snapshot = Snapshot.of_frame("2026-12-01", frame)
    assert set(snapshot.values.dtypes) == {"int8", "int16", "int32", "float64"}
    return snapshot


@pytest.fixture(scope="module")
def space(snapshot) -> EmbeddingSpace:
    sample = snapshot.take_frame(np.arange(0, N, 7))
    return EmbeddingSpace.fit(sample, {"acquisition_channel": ["ads", "invite", "organic"], "gender": ["F", "M"]})


@pytest.mark.parametrize("parallel_rows", [N, 100], ids=["one thread", "slices on threads"])
def test_rows_embed_bit_for_bit_as_their_frame(snapshot, space, parallel_rows, monkeypatch):
    monkeypatch.setattr(embedding, "PARALLEL_ROWS", parallel_rows)
    monkeypatch.setattr(embedding, "CORES", 3)  # slices of unequal length, whatever this box has
    rows = np.random.default_rng(0).choice(N, 2500)  # any order, repeats allowed
    assert np.array_equal(RowEmbedder(space, snapshot)(rows), space.embed(snapshot.take_frame(rows)))


def test_reranked_candidates_find_the_exact_neighbours(snapshot, space):
    vectors = space.embed(snapshot.take_frame(slice(None)))
    exact = faiss.IndexFlatIP(space.width)
    exact.add(vectors)
    coarse = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(space.width), space.width, 16,
                                           faiss.ScalarQuantizer.QT_4bit, faiss.METRIC_INNER_PRODUCT)
    coarse.train(vectors)
    coarse.add(vectors)
    coarse.nprobe = 16
    lk = Lookalike(space, snapshot, coarse)
    seeds, per_seed = np.arange(0, N, 60), 30
    truth = exact.search(vectors[seeds], per_seed)[1]
    plain = coarse.search(vectors[seeds], per_seed)[1]
    nb = lk.neighbours(seeds, per_seed, protected_off=False, candidates=2 * per_seed)  # 4-bit codes: twice as deep

    def recall(found: np.ndarray) -> float:
        return float(np.mean([len(np.intersect1d(a, b)) / per_seed for a, b in zip(found, truth)]))

    print(f"recall of the exact neighbours: index {recall(plain):.3f}, re-ranked {recall(nb.rows):.3f}")
    assert lk.approximate and recall(nb.rows) > recall(plain) + 0.05
    assert recall(nb.rows) > 0.93
    assert np.allclose(nb.sims, np.take_along_axis(vectors[seeds] @ vectors.T, nb.rows, 1), atol=1e-5), "exact similarities"
