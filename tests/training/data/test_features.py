"""Point-in-time features: no leakage, no ground truth, one row per user."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_settings
from scoring.snapshot import locate
from scoring.vocabulary import SNAPSHOT_COLUMNS
from training.data import feature_writer, features, warehouse
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

    loans = frames["loans"]
    new_ids = loans.loan_id.max() + 1 + np.arange(len(some))
    frames["loans"] = pd.concat([loans, pd.DataFrame({"loan_id": new_ids, "user_id": some, "applied_date": as_of,
                                                      "amount": 1000.0, "term_months": 3, "instalment": 350.0})])
    # Instalments falling due on the as-of date or after, and instalments past due paid only on it.
    inst = frames["instalments"]
    due_later = pd.DataFrame({"loan_id": new_ids, "instalment_no": 1, "user_id": some,
                              "due_date": [later(k) for k in range(len(some))], "amount_due": 350.0,
                              "amount_paid": 0.0, "paid_date": pd.NaT, "days_past_due": pd.NA, "balance": 1050.0})
    past_due = (inst.due_date < as_of) & ~(inst.paid_date < as_of)
    assert past_due.sum() > 20, "the world has instalments unpaid at the as-of date"
    paid_late = inst[past_due].assign(paid_date=as_of, amount_paid=lambda d: d.amount_due,
                                      days_past_due=lambda d: (as_of - d.due_date).dt.days)
    frames["instalments"] = pd.concat([inst[~past_due], paid_late, due_later])

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


def test_features_written_in_batches_are_the_frame(settings, dates, tmp_path):
    """The snapshot file is written a batch at a time (a 10M-user frame would not fit): batch by batch,
    dtypes and nullable integers included, it reads back as the frame computed whole."""
    with warehouse.connect(settings) as con:
        rows = feature_writer.write_features(con, dates.oot, tmp_path / "features.parquet", batch_rows=3000)
        whole = features.compute_features(con, dates.oot)
    assert rows == len(whole) > 3 * 3000
    assert pd.api.types.is_extension_array_dtype(whole["worst_dpd_12m"])  # a nullable integer column
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "features.parquet"), whole)


def test_ground_truth_is_not_reachable_from_features(settings, dates):
    truth_cols = set().union(*(pd.read_parquet(p).columns for p in settings.truth_dir.glob("*.parquet")))
    f = pd.read_parquet(snapshot_paths(settings, dates.oot).features)
    assert not (truth_cols - {"user_id", "campaign_id", "loan_id"}) & set(f.columns)
    with duckdb.connect(str(settings.warehouse_db), read_only=True) as con:
        views = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        sql = " ".join(r[0] for r in con.execute("SELECT sql FROM duckdb_views() WHERE NOT internal").fetchall())
    assert views == set(TABLES)
    assert "truth" not in sql
    for text in (features.FEATURE_SQL, *features.EDGES_SQL, features.LABEL_SQL, features.RESPONSE_SQL):
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


def _tiny_warehouse(loans: list[tuple], instalments: list[tuple]) -> duckdb.DuckDBPyConnection:
    """The contract's tables in memory: two users, the given loans and instalments, nothing else."""
    con = duckdb.connect()
    for t in TABLES.values():
        con.execute(f"CREATE TABLE {t.name} ({', '.join(f'{c} {d}' for c, d in t.sql_types('BIGINT').items())})")
    con.execute("INSERT INTO users (user_id, signup_date, credit_line) VALUES (1, DATE '2023-01-01', 5000), "
                "(2, DATE '2023-01-01', 5000), (3, DATE '2023-01-01', 5000)")
    con.executemany("INSERT INTO loans VALUES (?, ?, ?, ?, ?, ?)", loans)
    con.executemany("INSERT INTO instalments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", instalments)
    return con


def test_default_is_90_days_past_due_within_12_months_of_the_application():
    """Loan 1 reaches 90 days past due on its third instalment (due day 90, still unpaid at day 180): a default.
    Loan 2's worst is 89 days, and its instalment unpaid since day 300 reaches 90 only on day 390: no default
    within the 12 months. Loan 3 was applied too late for its 12 months to end by the data's end: unknown."""
    applied = pd.Timestamp("2024-01-10")
    day = lambda k: (applied + pd.Timedelta(days=k)).date()  # noqa: E731
    loans = [(1, 1, day(0), 1000.0, 12, 90.0), (2, 2, day(0), 1000.0, 12, 90.0), (3, 3, day(200), 1000.0, 3, 340.0)]
    inst = [
        (1, 1, 1, day(30), 90.0, 90.0, day(30), 0, 1080.0),
        (1, 2, 1, day(60), 90.0, 90.0, day(75), 15, 990.0),
        (1, 3, 1, day(90), 90.0, 0.0, None, None, 900.0),
        (2, 1, 2, day(30), 90.0, 90.0, day(119), 89, 1080.0),
        (2, 2, 2, day(60), 90.0, 90.0, day(119), 59, 1080.0),
        (2, 10, 2, day(300), 90.0, 0.0, None, None, 270.0),
        (3, 1, 3, day(230), 340.0, 0.0, None, None, 1020.0),
    ]
    with _tiny_warehouse(loans, inst) as con:
        labels = features.compute_labels(con, applied.date(), 30, day(380))
        later = features.compute_labels(con, day(200), 30, day(380))
        known = features.compute_features(con, day(200))
    assert labels.loc[1, "default_12m"] == 1 and labels.loc[2, "default_12m"] == 0
    assert labels.loc[1, "loan_id"] == 1 and pd.isna(labels.loc[3, "loan_id"])
    assert later.loc[3, "loan_id"] == 3 and pd.isna(later.loc[3, "default_12m"])
    # By day 200 loan 1's default is known to the features (90 days past due on day 180), loan 2's worst is not one.
    assert known.loc[1, "loan_defaults_known"] == 1 and known.loc[2, "loan_defaults_known"] == 0


def test_delinquency_features_read_the_instalments_as_they_stood_at_the_as_of_date():
    """One loan: the first instalment paid 40 days late, the second partly paid on time, the third unpaid."""
    applied = pd.Timestamp("2024-01-01")
    day = lambda k: (applied + pd.Timedelta(days=k)).date()  # noqa: E731
    inst = [(1, 1, 1, day(30), 100.0, 100.0, day(70), 40, 300.0),
            (1, 2, 1, day(60), 100.0, 60.0, day(60), 0, 300.0),
            (1, 3, 1, day(90), 140.0, 0.0, None, None, 140.0)]
    with _tiny_warehouse([(1, 1, day(0), 280.0, 3, 100.0)], inst) as con:
        f = features.compute_features(con, day(100)).loc[1]
        before = features.compute_features(con, day(50)).loc[1]
    assert f.dpd_now == 10 and f.worst_dpd_3m == 40 and f.worst_dpd_12m == 40
    assert f.instalments_due_12m == 3 and f.instalments_late_12m == 2 and f.instalments_30dpd_12m == 1
    assert f.partial_share_12m == 0.5 and f.open_loans == 1 and f.loan_balance == pytest.approx(140.0)
    assert f.loan_utilisation == pytest.approx(140 / 5000) and f.months_on_book == pytest.approx(100 / 30)
    # At day 50 the first instalment was 20 days late and unpaid; nothing had been paid.
    assert before.dpd_now == 20 and before.instalments_due_12m == 1 and pd.isna(before.partial_share_12m)
    assert before.loan_balance == pytest.approx(300.0)
