"""The plan store: whole plans or none, one plan per client key across processes, caps held until cancelled."""

from __future__ import annotations

import multiprocessing
import sqlite3
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from scoring.plans import COLUMNS, PlanStore

DAY = date(2026, 12, 10)


def rows(n: int, channel: str = "sms", ids=None) -> pd.DataFrame:
    return pd.DataFrame({"user_id": list(ids if ids is not None else range(1, n + 1)), "arm": f"coupon/{channel}/noon",
                         "channel": channel, "window": "noon", "expected_uplift": 0.01, "net_value": 0.5,
                         "reasons": "active/V3", "holdout": [i % 10 == 0 for i in range(n)]})


@pytest.mark.parametrize("ids", [list(range(1, 26)), [f"u{i}" for i in range(25)]], ids=["int", "text"])
def test_a_plan_reads_back_as_written(tmp_path: Path, ids: list) -> None:
    store = PlanStore(tmp_path / "plans.sqlite")
    plan, created = store.save(DAY, {"budget": 1}, {"planned_users": 25}, rows(25, ids=ids))
    assert created and store.get(plan.plan_id).summary["planned_users"] == 25
    back = store.assignments(plan.plan_id)
    assert list(back.columns) == list(COLUMNS)
    assert back.user_id.tolist() == ids  # ids keep their type
    assert back.holdout.dtype == bool and back.holdout.sum() == 3
    assert store.assignments(plan.plan_id, offset=20, limit=3).user_id.tolist() == ids[20:23]
    assert store.assignments(plan.plan_id, offset=24, limit=10).user_id.tolist() == ids[24:]


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    store = PlanStore(tmp_path / "plans.sqlite")
    bad = rows(10)
    bad.loc[7, "arm"] = None  # a missing value: refused before any plan names the rows
    with pytest.raises(ValueError, match="missing"):
        store.save(DAY, {}, {}, bad)
    with store._connect() as con:
        assert con.execute("SELECT count(*) FROM plans").fetchone()[0] == 0
    assert not list(store.folder.iterdir())


def test_a_plan_is_named_only_once_its_rows_are_on_disk(tmp_path: Path) -> None:
    """A failure while the plan's row is written leaves no assignments file behind, and no plan."""
    store = PlanStore(tmp_path / "plans.sqlite")
    with store._connect() as con:  # the insert fails after the file is written
        con.execute("CREATE TRIGGER refuse BEFORE INSERT ON plans BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    with pytest.raises(Exception, match="disk full"):
        store.save(DAY, {}, {}, rows(10))
    assert not list(store.folder.iterdir())


def _save_with_key(path: str, queue) -> None:
    plan, created = PlanStore(Path(path)).save(DAY, {}, {}, rows(2000), client_key="weekly-49")
    queue.put((plan.plan_id, created))


def test_one_plan_per_client_key_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "plans.sqlite"
    PlanStore(path)
    queue = multiprocessing.get_context("spawn").Queue()
    procs = [multiprocessing.get_context("spawn").Process(target=_save_with_key, args=(str(path), queue))
             for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    results = [queue.get(timeout=5) for _ in procs]
    assert len({plan_id for plan_id, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, False, True]
    store = PlanStore(path)
    assert len(store.assignments(results[0][0])) == 2000
    assert len(list(store.folder.iterdir())) == 1  # the two plans not kept left no file behind


def test_held_contacts_count_the_window_and_release_on_cancel(tmp_path: Path) -> None:
    store = PlanStore(tmp_path / "plans.sqlite")
    near, _ = store.save(date(2026, 12, 1), {}, {}, rows(10))
    store.save(date(2026, 10, 1), {}, {}, rows(10))  # outside a 30-day window around DAY
    store.save(DAY, {}, {}, rows(5, channel="push"))
    held = store.held_contacts(DAY, 30)
    sms = held[held.channel == "sms"].set_index("user_id").sends
    assert len(sms) == 9 and (sms == 1).all()  # the holdout (user 1) is never contacted, so holds nothing
    assert len(held[held.channel == "push"]) == 4
    store.cancel(near.plan_id)
    assert (store.held_contacts(DAY, 30).channel == "push").all()


def test_a_sent_plan_holds_its_caps_until_the_snapshot_sees_it_and_cannot_be_cancelled(tmp_path: Path) -> None:
    store = PlanStore(tmp_path / "plans.sqlite")
    sent, _ = store.save(date(2026, 12, 1), {}, {}, rows(10))
    store.mark_sent(sent.plan_id, 7)
    assert store.campaign_id(sent.plan_id) == 7 and not store.cancel(sent.plan_id)
    assert store.get(sent.plan_id).status == "sent"
    assert len(store.held_contacts(DAY, 30)) == 9  # sent after the snapshot: its sends still count
    assert store.held_contacts(DAY, 30, since=date(2026, 12, 2)).empty  # the snapshot's contacts hold them


def test_a_store_from_before_sends_gains_the_campaign_column(tmp_path: Path) -> None:
    path = tmp_path / "plans.sqlite"
    with sqlite3.connect(path) as con:
        con.executescript("CREATE TABLE plans (plan_id TEXT PRIMARY KEY, client_key TEXT UNIQUE, created_at TEXT "
                          "NOT NULL, send_date TEXT NOT NULL, status TEXT NOT NULL, request TEXT NOT NULL, "
                          "summary TEXT NOT NULL);")
    store = PlanStore(path)
    plan, _ = store.save(DAY, {"budget": 1}, {}, rows(3))
    assert store.campaign_id(plan.plan_id) is None and store.request(plan.plan_id) == {"budget": 1}
