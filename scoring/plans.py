"""The plan store: campaign plans in one SQLite database under the data folder, each plan's assignments
in a Parquet file beside it.

WAL mode, so that several worker processes (and the offline `python -m training plan`) read while one
writes. A plan's assignments (a million rows for a whole base) are written to their file first and
renamed into place; only then is the plan's row committed, so a plan is there whole or not at all
(a crash in between leaves a file no plan names). A client key makes a plan idempotent: a second
request with the same key gets the first plan back. A plan holds its contacted users' contact caps
until it is cancelled.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = """
CREATE TABLE IF NOT EXISTS plans (
    plan_id TEXT PRIMARY KEY,
    client_key TEXT UNIQUE,
    created_at TEXT NOT NULL,
    send_date TEXT NOT NULL,
    status TEXT NOT NULL,  -- issued | sent | cancelled
    request TEXT NOT NULL,
    summary TEXT NOT NULL,
    campaign_id INTEGER  -- once sent: its campaign in the warehouse
);
CREATE INDEX IF NOT EXISTS plans_send_date ON plans(send_date, status);
"""
# The assignment columns, in the order every rendering (JSON, CSV, Parquet) gives them.
COLUMNS = ("user_id", "arm", "channel", "window", "expected_uplift", "net_value", "reasons", "holdout")
ISSUED, SENT, CANCELLED = "issued", "sent", "cancelled"
# Rows per Parquet row group: a page of assignments reads about one.
PAGE_ROWS = 10_000


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
        self.folder = path.with_suffix("")  # plans.sqlite → plans/, one Parquet file per plan
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(SCHEMA)
            if "campaign_id" not in {r[1] for r in con.execute("PRAGMA table_info(plans)")}:
                con.execute("ALTER TABLE plans ADD COLUMN campaign_id INTEGER")  # a store from before sends

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
        """Store a plan and its assignments (COLUMNS); (the plan, True), or (the plan already stored under
        client_key, False)."""
        plan_id = uuid.uuid4().hex
        summary = {"plan_id": plan_id, **summary}
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._write(plan_id, rows)
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")  # the write lock first: a second worker waits here, then sees the key
            try:
                if client_key is not None:
                    row = con.execute("SELECT plan_id FROM plans WHERE client_key = ?", (client_key,)).fetchone()
                    if row:
                        con.execute("ROLLBACK")
                        self._file(plan_id).unlink()
                        return self.get(row[0]), False
                con.execute("INSERT INTO plans VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                            (plan_id, client_key, created, send_date.isoformat(), ISSUED, json.dumps(request),
                             json.dumps(summary)))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                self._file(plan_id).unlink(missing_ok=True)
                raise
        return StoredPlan(plan_id, send_date.isoformat(), ISSUED, summary), True

    def _file(self, plan_id: str) -> Path:
        return self.folder / f"{plan_id}.parquet"

    def _write(self, plan_id: str, rows: pd.DataFrame) -> None:
        """The assignments' file, complete and on disk before any plan names it."""
        table = pa.Table.from_pandas(rows[list(COLUMNS)], preserve_index=False)
        if any(table.column(c).null_count for c in COLUMNS):
            raise ValueError("an assignment has a missing value")
        part = self._file(plan_id).with_suffix(".part")
        with open(part, "wb") as out:
            pq.write_table(table, out, row_group_size=PAGE_ROWS)
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, self._file(plan_id))

    def cancel(self, plan_id: str) -> bool:
        """Cancel a plan not yet sent; False when it was sent (its contacts happened)."""
        with self._connect() as con:
            return con.execute("UPDATE plans SET status = ? WHERE plan_id = ? AND status != ?",
                               (CANCELLED, plan_id, SENT)).rowcount > 0

    def request(self, plan_id: str) -> dict:
        with self._connect() as con:
            return json.loads(con.execute("SELECT request FROM plans WHERE plan_id = ?", (plan_id,)).fetchone()[0])

    def mark_sent(self, plan_id: str, campaign_id: int) -> None:
        with self._connect() as con:
            con.execute("UPDATE plans SET status = ?, campaign_id = ? WHERE plan_id = ?", (SENT, campaign_id, plan_id))

    def campaign_id(self, plan_id: str) -> int | None:
        with self._connect() as con:
            row = con.execute("SELECT campaign_id FROM plans WHERE plan_id = ?", (plan_id,)).fetchone()
        return row[0] if row else None

    def assignments(self, plan_id: str, offset: int = 0, limit: int | None = None) -> pd.DataFrame:
        """A page of a plan's assignments in their stored order (all of them without a limit)."""
        table = pq.read_table(self._file(plan_id), columns=list(COLUMNS), memory_map=True)
        frame = table.slice(offset, limit).to_pandas()
        for c in ("arm", "channel", "window", "reasons"):
            if c in frame:
                frame[c] = frame[c].astype(str)  # stored dictionary-encoded
        return frame

    def held_contacts(self, send_date: date, window_days: int, since: date | None = None) -> pd.DataFrame:
        """Sends per (user_id, channel) of issued or sent plans whose send date is within window_days of
        send_date (either side: a rolling 30-day cap counts a later plan's sends as an earlier one's), and
        not before `since` (sends before it are counted from the warehouse's contacts)."""
        lo, hi = send_date - timedelta(days=window_days - 1), send_date + timedelta(days=window_days - 1)
        lo = max(lo, since) if since else lo
        with self._connect() as con:
            ids = [r[0] for r in con.execute("SELECT plan_id FROM plans WHERE status IN (?, ?) AND send_date "
                                             "BETWEEN ? AND ?", (ISSUED, SENT, lo.isoformat(), hi.isoformat()))]
        sends = [pq.read_table(self._file(i), columns=["user_id", "channel", "holdout"],
                               filters=[("holdout", "=", False)]) for i in ids]
        if not sends:
            return pd.DataFrame({"user_id": pd.Series(dtype="int64"), "channel": pd.Series(dtype="str"),
                                 "sends": pd.Series(dtype="int64")})
        frame = pa.concat_tables(sends, promote_options="permissive").to_pandas()
        frame["channel"] = frame["channel"].astype(str)
        return frame.groupby(["user_id", "channel"], observed=True).size().rename("sends").reset_index()
