"""Snapshot lookup by id: whole-number and text ids alike, each found only in the warehouse's own type."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from scoring.artifacts import ArtifactError, file_sha256
from scoring.snapshot import COLUMNS_FILE, IDS_FILE, VALUES_FILE, Snapshot, block_file, id_array, write_mapped
from scoring.spec import FeatureSpec


def snapshot(ids: list) -> Snapshot:
    frame = pd.DataFrame({"x": range(len(ids))}, index=pd.Index(ids, name="user_id")).sort_index()
    return Snapshot.of_frame("2025-01-01", frame)


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


def _frame(n: int = 50) -> pd.DataFrame:
    """Ids out of order and every kind of column a snapshot has: ints, floats with gaps, bools, nullable
    ints, text with gaps."""
    rng = np.random.default_rng(3)
    return pd.DataFrame({
        "gender": pd.array(rng.choice(["f", "m", None], n), dtype="string"),
        "age": rng.integers(18, 80, n),
        "credit_line": np.where(rng.random(n) < 0.2, np.nan, rng.gamma(2, 900, n)),
        "bound_card": rng.random(n) < 0.5,
        "dpd_now": pd.array(np.where(rng.random(n) < 0.3, None, rng.integers(0, 90, n)), dtype="Int64"),
        "acquisition_channel": pd.array(rng.choice(["ads", "invite", "organic", None], n), dtype="string"),
    }, index=pd.Index(rng.permutation(np.arange(n) * 3 + 11), name="user_id"))


def _published(tmp_path, frame: pd.DataFrame):
    frame.to_parquet(tmp_path / "features.parquet", index=True)
    files = write_mapped(tmp_path / "features.parquet", tmp_path, batch_rows=7)  # batches that do not divide it
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"as_of": "2025-01-01", "rows": len(frame), "sha256": {p.name: file_sha256(p) for p in files}}))


def test_mapped_files_hold_what_the_frame_holds_and_are_mapped_not_read(tmp_path):
    frame = _frame()
    _published(tmp_path, frame)
    mapped, direct = Snapshot.load(tmp_path), Snapshot.of_frame("2025-01-01", frame)
    assert all(not b.flags.owndata for b in mapped.values.blocks.values())
    assert mapped.values.dtypes == direct.values.dtypes
    assert np.array_equal(mapped.values.to_numpy(), direct.values.to_numpy(), equal_nan=True)
    assert np.array_equal(mapped.ids, direct.ids)
    assert mapped.categories == direct.categories == {"gender": ["f", "m"], "acquisition_channel": ["ads", "invite", "organic"]}
    back = mapped.frame.loc[frame.index]
    assert back["acquisition_channel"].tolist() == frame["acquisition_channel"].tolist()
    assert np.allclose(back["dpd_now"].to_numpy(), frame["dpd_now"].to_numpy(dtype=float, na_value=np.nan), equal_nan=True)
    assert mapped.column_means[mapped.position["credit_line"]] == pytest.approx(frame["credit_line"].mean())


@pytest.mark.parametrize("dtype", ["float64", "int8", "int16"])
def test_a_flipped_byte_in_any_block_of_the_matrix_is_refused(tmp_path, dtype):
    frame = _frame().assign(tenure_days=lambda f: np.arange(len(f)) * 100)  # an int16 column
    _published(tmp_path, frame)
    path = tmp_path / block_file(dtype)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=path.name):
        Snapshot.load(tmp_path)


def test_a_snapshot_of_one_float64_matrix_still_loads(tmp_path):
    """Published before the columns had types: snapshot-values.npy held them all."""
    frame = _frame()
    _published(tmp_path, frame)
    direct = Snapshot.of_frame("2025-01-01", frame)
    np.save(tmp_path / VALUES_FILE, direct.values.to_numpy())
    meta = json.loads((tmp_path / COLUMNS_FILE).read_text())
    (tmp_path / COLUMNS_FILE).write_text(json.dumps({k: v for k, v in meta.items() if k != "dtypes"}))
    for name in ("snapshot-values-int8.npy",):
        (tmp_path / name).unlink()
    files = [tmp_path / n for n in (VALUES_FILE, IDS_FILE, COLUMNS_FILE)]
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"as_of": "2025-01-01", "rows": len(frame), "sha256": {p.name: file_sha256(p) for p in files}}))
    old = Snapshot.load(tmp_path)
    assert set(old.values.blocks) == {"float64"}
    assert np.array_equal(old.values.to_numpy(), direct.values.to_numpy(), equal_nan=True)


def test_a_new_snapshot_replaces_the_files_and_a_process_mapping_the_old_ones_reads_them_whole(tmp_path):
    _published(tmp_path, _frame())
    old = Snapshot.load(tmp_path)
    before = old.values.to_numpy()
    _published(tmp_path, _frame(20))  # fewer rows: written in place, the old map would run past the file's end
    assert np.array_equal(old.values.to_numpy(), before, equal_nan=True)
    assert len(Snapshot.load(tmp_path).ids) == 20
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [], "no temporary file left"


@pytest.mark.parametrize("categories", [["ads", "invite", "organic"], ["organic", "ads", "partner"]])
def test_a_model_reads_its_columns_as_its_spec_would_make_them(categories):
    """Reordered, a subset, a column the snapshot lacks (NaN), categories in another order or unseen."""
    frame = _frame()
    snap = Snapshot.of_frame("2025-01-01", frame)
    spec = FeatureSpec(numeric=["credit_line", "age", "offer_cost", "dpd_now"],
                       categorical={"acquisition_channel": categories}, optional=["offer_cost"])
    rows = snap.features_for(spec)
    expected = spec.to_matrix(snap.frame.reindex(columns=spec.names))
    pos = np.array([4, 0, 49, 4])
    assert np.array_equal(rows.take(pos), expected[pos], equal_nan=True)
    assert np.array_equal(rows.row(7), expected[7:8], equal_nan=True)
    assert np.array_equal(np.vstack(list(rows.chunks(size=9))), expected, equal_nan=True)


def test_each_column_is_kept_in_the_narrowest_type_that_holds_it():
    frame = _frame()
    snap = Snapshot.of_frame("2025-01-01", frame)
    types = dict(zip(snap.columns, snap.values.dtypes))
    assert types == {"age": "int8", "credit_line": "float64", "bound_card": "int8", "dpd_now": "int8",
                     "acquisition_channel": "int8", "gender": "int8"}
    assert snap.values.nbytes == len(frame) * (5 + 8)


def test_a_model_fitted_on_the_snapshots_columns_reads_its_rows():
    frame = _frame()
    snap = Snapshot.of_frame("2025-01-01", frame)
    spec = FeatureSpec.fit(frame)  # numbers, then text, in the frame's order; gender is no feature
    rows = snap.features_for(spec)
    expected = spec.to_matrix(snap.frame)
    assert np.array_equal(rows.take(np.array([3, 1])), expected[[3, 1]], equal_nan=True)
    assert np.array_equal(rows.row(3), expected[3:4], equal_nan=True)
