"""Lifecycle stages and value bands at their boundaries, unknown values included."""

from __future__ import annotations

import numpy as np

from scoring.segments import SegmentGrid, stage_index


def test_stage_boundaries():
    silent = np.array([0, 6.5, 7, 21, 21.5, 22, 90, 91, 360, 361, np.nan, 5, 400])
    tenure = np.array([400] * 11 + [29, np.nan])
    assert stage_index(tenure, silent).tolist() == [1, 1, 2, 2, 3, 3, 3, 4, 4, 5, 1, 0, 0]


def test_value_bands_and_labels():
    grid = SegmentGrid([0.0, 10.0, 100.0, 1000.0])
    value = np.array([np.nan, 0.0, 5.0, 10.0, 50.0, 100.0, 999.0, 5000.0])
    labels = grid.assign(np.full(len(value), 400.0), np.zeros(len(value)), value)
    assert labels.tolist() == ["active/V1", "active/V1", "active/V2", "active/V2", "active/V3", "active/V3",
                               "active/V4", "active/V5"]


def test_one_user_label_matches_the_vectorised_grid():
    rng = np.random.default_rng(0)
    n = 20_000
    tenure = rng.choice([np.nan, 5.0, 29.9, 30.0, 400.0], n)
    silent = np.where(rng.random(n) < 0.05, np.nan, rng.choice([0, 6.9, 7, 21, 21.5, 90, 90.5, 360, 361, 700], n))
    value = np.where(rng.random(n) < 0.05, np.nan, rng.exponential(200, n) * (rng.random(n) < 0.7))
    value[:8] = [0.0, 10.0, 100.0, 1000.0, -1.0, np.nan, 5.0, 1e6]  # on and around the edges
    grid = SegmentGrid([0.0, 10.0, 100.0, 1000.0])
    expected = grid.assign(tenure, silent, value).tolist()
    assert [grid.label(t, d, v) for t, d, v in zip(tenure.tolist(), silent.tolist(), value.tolist())] == expected
