"""The plan store: campaign plans and their assignments in one SQLite database under the data folder.

WAL mode, so that several worker processes (and the offline `python -m training plan`) read while one
writes; each plan is written in one transaction, so it is there whole or not at all. A client key
makes a plan idempotent: a second request with the same key gets the first plan back. A plan holds
its contacted users' contact caps until it is cancelled.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

SCHEMA = """
CREATE TABLE IF NOT EXISTS plans (
    plan_id TEXT PRIMARY KEY,
    client_key TEXT UNIQUE,
    created_at TEXT NOT NULL,
    send_date TEXT NOT NULL,
    status TEXT NOT NULL,  -- issued | cancelled
    request TEXT NOT NULL,
    summary TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS assignments (
    plan_id TEXT NOT NULL REFERENCES plans(plan_id),
    seq INTEGER NOT NULL,
    user_id NOT NULL,  -- an integer or text, as the warehouse has it
    arm TEXT NOT NULL,
    channel TEXT NOT NULL,
    window TEXT NOT NULL,
    expected_uplift REAL NOT NULL,
    net_value REAL NOT NULL,
    reasons TEXT NOT NULL,
    holdout INTEGER NOT NULL,
    PRIMARY KEY (plan_id, seq)
);
CREATE INDEX IF NOT EXISTS plans_send_date ON plans(send_date, status);
"""
# The assignment columns, in the order every rendering (JSON, CSV, Parquet) gives them.
COLUMNS = ("user_id", "arm", "channel", "window", "expected_uplift", "net_value", "reasons", "holdout")
ISSUED, CANCELLED = "issued", "cancelled"


@dataclass
class StoredPlan:
    plan_id: str
    send_date: str
    status: str
    summary: dict


class PlanStore:
    def __init__(self, path: Path, busy_timeout_s: float = 60.0):
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection per use: they are cheap, and one may not cross threads or processes."""
        con = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
        try:
            yield con
        finally:
            con.close()

    def by_key(self, client_key: str) -> StoredPlan | None:
        with self._connect() as con:
            row = con.execute("SELECT plan_id, send_date, status, summary FROM plans WHERE client_key = ?",
                              (client_key,)).fetchone()
        return StoredPlan(row[0], row[1], row[2], json.loads(row[3])) if row else None

    def get(self, plan_id: str) -> StoredPlan | None:
        with self._connect() as con:
            row = con.execute("SELECT plan_id, send_date, status, summary FROM plans WHERE plan_id = ?",
                              (plan_id,)).fetchone()
        return StoredPlan(row[0], row[1], row[2], json.loads(row[3])) if row else None

    def save(self, send_date: date, request: dict, summary: dict, rows: pd.DataFrame,
             client_key: str | None = None) -> tuple[StoredPlan, bool]:
        """Store a plan and its assignments in one transaction; (the plan, True), or (the plan already
        stored under client_key, False)."""
        plan_id = uuid.uuid4().hex
        summary = {"plan_id": plan_id, **summary}
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        records = zip([plan_id] * len(rows), range(len(rows)), *(_plain(rows[c]) for c in COLUMNS))
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")  # the write lock first: a second worker waits here, then sees the key
            try:
                if client_key is not None:
                    row = con.execute("SELECT plan_id FROM plans WHERE client_key = ?", (client_key,)).fetchone()
                    if row:
                        con.execute("ROLLBACK")
                        return self.get(row[0]), False
                con.execute("INSERT INTO plans VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (plan_id, client_key, created, send_date.isoformat(), ISSUED, json.dumps(request),
                             json.dumps(summary)))
                con.executemany("INSERT INTO assignments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", records)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return StoredPlan(plan_id, send_date.isoformat(), ISSUED, summary), True

    def cancel(self, plan_id: str) -> None:
        with self._connect() as con:
            con.execute("UPDATE plans SET status = ? WHERE plan_id = ?", (CANCELLED, plan_id))

    def assignments(self, plan_id: str, offset: int = 0, limit: int | None = None) -> pd.DataFrame:
        """A page of a plan's assignments in their stored order (all of them without a limit)."""
        with self._connect() as con:
            frame = pd.read_sql_query(
                f"SELECT {', '.join(COLUMNS)} FROM assignments WHERE plan_id = ? ORDER BY seq LIMIT ? OFFSET ?",
                con, params=(plan_id, -1 if limit is None else limit, offset))
        frame["holdout"] = frame["holdout"].astype(bool)
        return frame

    def held_contacts(self, send_date: date, window_days: int) -> pd.DataFrame:
        """Sends per (user_id, channel) of issued plans whose send date is within window_days of send_date
        (either side: a rolling 30-day cap counts a later plan's sends as an earlier one's)."""
        lo, hi = send_date - timedelta(days=window_days - 1), send_date + timedelta(days=window_days - 1)
        with self._connect() as con:
            return pd.read_sql_query(
                "SELECT a.user_id, a.channel, count(*) AS sends FROM assignments a JOIN plans p USING (plan_id) "
                "WHERE p.status = ? AND p.send_date BETWEEN ? AND ? AND a.holdout = 0 GROUP BY a.user_id, a.channel",
                con, params=(ISSUED, lo.isoformat(), hi.isoformat()))


def _plain(column: pd.Series) -> list:
    """Python values sqlite takes (numpy integers and bools it does not)."""
    values = column.to_numpy()
    if values.dtype.kind == "b":
        return values.astype(int).tolist()
    return values.tolist() if isinstance(values, np.ndarray) else list(values)
