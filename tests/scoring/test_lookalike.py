"""Lookalike expansion on the session's snapshot: segments expand into themselves, guards hold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scoring.lookalike import Lookalike, expand
from scoring.seeds import load_seed, seed_folder
from scoring.snapshot import Snapshot


@pytest.fixture(scope="module")
def frame(settings) -> pd.DataFrame:
    return pd.read_parquet(settings.snapshot_dir / "features.parquet").sort_index()


@pytest.fixture(scope="module")
def snapshot(settings) -> Snapshot:
    return Snapshot.load(settings.snapshot_dir)


@pytest.fixture(scope="module")
def lk(settings, snapshot) -> Lookalike:
    return Lookalike.load(settings.snapshot_dir / "lookalike", snapshot)


def test_seeds_are_materialised(settings):
    for name in ("top_value_20pct", "churned_high_value", "red_packet_converters"):
        assert len(load_seed(seed_folder(settings), name)) > 0


@pytest.mark.parametrize("method", ["embedding", "classifier"])
def test_seed_from_a_segment_expands_into_that_segment(lk, frame, snapshot, method):
    """Seeds: 300 wealth-section regulars; the audience is mostly that segment, far above its base rate."""
    segment = (frame["pv_wealth_90"] >= frame["pv_wealth_90"].quantile(0.9)).to_numpy()
    rows = np.flatnonzero(segment)
    seeds = np.random.default_rng(0).choice(rows, 300, replace=False)
    k = 1000
    out = expand(lk, seeds, k, np.ones(len(frame), bool), method=method)
    pos = np.searchsorted(lk.user_ids, out.ids)
    precision = segment[pos].mean()
    base = segment.mean()
    print(f"{method}: precision {precision:.2f} vs base rate {base:.2f}; self-check recall "
          f"{out.recall_heldout:.2f} vs random {out.recall_random:.3f}")
    assert precision > 4 * base
    assert out.recall_heldout > 5 * out.recall_random
    assert not np.isin(out.ids, lk.user_ids[seeds]).any(), "seeds are excluded"
    assert out.distinguishing[0]["feature"] in {"pv_wealth_90", "fund_cnt_90", "fund_amt_90", "active_days_90",
                                                "launches_90", "fund_amt_all", "active_days_30", "launches_30"}


def test_filters_hold_and_protected_attributes_can_be_left_out(lk, frame, snapshot):
    seeds = np.flatnonzero((frame["age"] < 25).to_numpy())[:300]
    allowed = (frame["city_tier"] == 1).to_numpy()
    out = expand(lk, seeds, 500, allowed)
    assert (frame.loc[out.ids, "city_tier"] == 1).all()
    with_age = frame.loc[out.ids, "age"].mean()
    blind = expand(lk, seeds, 500, allowed, protected_off=True)
    # Young seeds pull a young audience only when age is part of the similarity.
    assert frame.loc[blind.ids, "age"].mean() > with_age


@pytest.mark.parametrize("method", ["embedding", "classifier"])
def test_similarity_is_the_score_the_ranking_used(lk, frame, snapshot, method):
    """Reported similarity never rises down the ranking, including past the rows the seeds' neighbours reach."""
    seeds = np.flatnonzero((frame["age"] < 25).to_numpy())[:100]
    k = len(frame) // 2  # far past what 100 seeds' neighbour lists cover
    out = expand(lk, seeds, k, np.ones(len(frame), bool), method=method)
    assert len(out.ids) == k
    assert (np.diff(out.similarity) <= 0).all(), f"{int((np.diff(out.similarity) > 0).sum())} inversions"
    assert out.similarity[0] > out.similarity[-1]
