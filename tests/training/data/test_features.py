"""Point-in-time features: no leakage, no ground truth, one row per user."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_settings
from scoring.snapshot import locate
from scoring.vocabulary import SNAPSHOT_COLUMNS
from training.data import features, warehouse
from training.data.schema import TABLES
from training.data.snapshots import build_snapshot, snapshot_paths


def test_the_sql_yields_the_declared_snapshot_columns():
    """The service's request models are built on the declared vocabulary: the SQL must keep to it."""
    assert features.feature_columns() == SNAPSHOT_COLUMNS


def test_one_row_per_user_signed_up_before_as_of(settings, dates):
    f = pd.read_parquet(snapshot_paths(settings, dates.oot).features)
    users = pd.read_parquet(settings.warehouse_dir / "users.parquet")
    expected = users[users.signup_date < pd.Timestamp(dates.oot)].user_id
    assert f.index.is_unique
    assert set(f.index) == set(expected)


def _frames(settings) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(settings.warehouse_dir / f"{name}.parquet") for name in TABLES}


def test_events_on_or_after_as_of_change_no_feature(settings, dates, tmp_path):
    """Append a burst of events dated on and after the as-of date: every feature stays the same."""
    as_of = pd.Timestamp(dates.train)
    frames = _frames(settings)
    some = frames["users"].user_id.sample(300, random_state=0).to_numpy()
    later = lambda k: as_of + pd.Timedelta(days=int(k))  # noqa: E731

    act = frames["daily_activity"]
    extra = act[act.activity_date < as_of].sample(2000, random_state=1).copy()
    extra["activity_date"] = [later(k) for k in np.random.default_rng(0).integers(0, 40, len(extra))]
    extra.iloc[:, 2:] = 9
    frames["daily_activity"] = pd.concat([act, extra]).drop_duplicates(["user_id", "activity_date"])

    txn = frames["transactions"]
    t_extra = txn.sample(2000, random_state=2).copy()
    t_extra["txn_id"] += txn.txn_id.max()
    t_extra["txn_date"] = as_of
    t_extra["amount"] = 1e6
    frames["transactions"] = pd.concat([txn, t_extra])

    loans = frames["loan_applications"]
    l_extra = pd.DataFrame({"application_id": loans.application_id.max() + 1 + np.arange(len(some)), "user_id": some,
                            "applied_date": as_of, "amount": 1000.0, "default_90d": True,
                            "outcome_date": as_of + pd.Timedelta(days=90)})
    frames["loan_applications"] = pd.concat([loans, l_extra])

    # A new user signing up on the as-of date sharing a device with existing users.
    users = frames["users"]
    newcomer = users.sample(5, random_state=3).copy()
    newcomer["user_id"] = users.user_id.max() + 1 + np.arange(5)
    newcomer["signup_date"] = as_of
    frames["users"] = pd.concat([users, newcomer])

    other = make_settings(tmp_path)
    warehouse.write_tables(frames, other)
    with warehouse.connect(settings) as a, warehouse.connect(other) as b:
        before, after = features.compute_features(a, as_of), features.compute_features(b, as_of)
    pd.testing.assert_frame_equal(before, after)


def test_features_are_deterministic(settings, dates):
    with warehouse.connect(settings) as con:
        again = features.compute_features(con, dates.oot)
    pd.testing.assert_frame_equal(again, pd.read_parquet(snapshot_paths(settings, dates.oot).features))


def test_ground_truth_is_not_reachable_from_features(settings, dates):
    truth_cols = set().union(*(pd.read_parquet(p).columns for p in settings.truth_dir.glob("*.parquet")))
    f = pd.read_parquet(snapshot_paths(settings, dates.oot).features)
    assert not (truth_cols - {"user_id", "campaign_id", "application_id"}) & set(f.columns)
    with duckdb.connect(str(settings.warehouse_db), read_only=True) as con:
        views = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        sql = " ".join(r[0] for r in con.execute("SELECT sql FROM duckdb_views() WHERE NOT internal").fetchall())
    assert views == set(TABLES)
    assert "truth" not in sql
    for text in (features.FEATURE_SQL, features.EDGES_SQL, features.LABEL_SQL, features.RESPONSE_SQL):
        assert "truth" not in text.lower()


def test_ring_size_flags_shared_device_rings(settings, dates):
    from training.data.truth import read_truth

    f = pd.read_parquet(snapshot_paths(settings, dates.oot).features)
    ring = read_truth(settings, "users").set_index("user_id").ring_id.reindex(f.index)
    assert f.ring_size[ring >= 0].median() >= 4
    assert f.ring_size[ring < 0].median() <= 2


def test_labels_need_a_full_window(settings, dates):
    with pytest.raises(ValueError, match="label window"):
        build_snapshot(settings, dates.serving)


def test_one_id_is_located_as_a_batch_is():
    ids = np.array([10, 20, 30, 40])
    queries = [5, 10, 25, 40, 99]
    batch_pos, batch_found = locate(ids, np.array(queries))
    for i, uid in enumerate(queries):
        pos, found = locate(ids, np.array([uid]))
        assert pos.tolist() == [batch_pos[i]] and found.tolist() == [batch_found[i]]
        assert found[0] == (uid in ids)


def test_a_large_batch_is_located_in_request_order():
    """Over 256 ids are searched in sorted order; positions must still follow the request."""
    rng = np.random.default_rng(0)
    ids = np.sort(rng.choice(10**9, 5000, replace=False))
    queries = np.concatenate([rng.choice(ids, 900), rng.integers(0, 10**9, 100), [ids[-1] + 1, -1]])
    rng.shuffle(queries)
    pos, found = locate(ids, queries)
    where = {u: i for i, u in enumerate(ids.tolist())}
    assert found.tolist() == [u in where for u in queries.tolist()]
    assert pos[found].tolist() == [where[u] for u in queries[found].tolist()]
