"""Lifecycle stages and value bands at their boundaries, unknown values included."""

from __future__ import annotations

import numpy as np

from training.segments import SegmentGrid, stage_index


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
