"""Snapshot lookup by id: whole-number and text ids alike, each found only in the warehouse's own type."""

from __future__ import annotations

import numpy as np
import pandas as pd

from scoring.snapshot import Snapshot, id_array


def snapshot(ids: list) -> Snapshot:
    frame = pd.DataFrame({"x": range(len(ids))}, index=pd.Index(ids, name="user_id")).sort_index()
    return Snapshot("2025-01-01", frame, id_array(frame.index))


def test_whole_number_ids_are_found_and_text_is_not_them():
    s = snapshot([30, 10, 20])
    pos, found = s.rows([20, 99, 10])
    assert found.tolist() == [True, False, True] and pos[[0, 2]].tolist() == [1, 0]
    pos, found = s.rows([20, "20", "abc"])  # "20" is not 20
    assert found.tolist() == [True, False, False]
    assert s.row(10) == 0 and s.row("10") is None and s.row(99) is None


def test_text_ids_are_found_and_numbers_are_not_them():
    s = snapshot(["b-2", "a-1", "c,3"])  # a comma in an id, as some warehouses have
    assert s.text_ids and s.ids.dtype.kind == "U"
    pos, found = s.rows(["c,3", "zz", 7, "a-1"])
    assert found.tolist() == [True, False, False, True] and pos[[0, 3]].tolist() == [2, 0]
    assert s.row("b-2") == 1 and s.row(7) is None


def test_one_id_is_located_as_a_batch_is():
    s = snapshot(["k", "d", "q", "a"])
    for u in ["a", "d", "k", "q", "b", "zz"]:
        pos, found = s.rows([u, u])
        assert (s.row(u) is not None) == found[0] and (s.row(u) is None or s.row(u) == pos[0])
    assert np.array_equal(id_array(pd.Index([3, 1])), np.array([3, 1]))
