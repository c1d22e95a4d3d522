"""The audit log shared by the server's worker processes: whole records, no raw ids."""

from __future__ import annotations

import json
import multiprocessing as mp
from datetime import datetime, timedelta, timezone
from pathlib import Path

from service.audit import AuditLog, pseudonym

IDS = list(range(10_000_000, 10_010_000))  # a 10,000-id record is ~290 KB, far above any buffer


def _write_records(path: str, worker: int, n: int) -> None:
    log = AuditLog(Path(path), b"secret")
    for i in range(n):
        log.write(request_id=f"{worker}-{i}", key_id="k", endpoint="/v1/churn/score", status=200, elapsed_ms=1.0,
                  detail={"user_ids": IDS, "n_users": len(IDS)})


def test_workers_appending_at_once_never_interleave_records(tmp_path):
    path = tmp_path / "audit.log"
    procs = [mp.get_context("spawn").Process(target=_write_records, args=(str(path), w, 15)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    records = [json.loads(line) for line in path.read_text().splitlines()]  # a torn record fails to parse
    assert sorted(r["request_id"] for r in records) == sorted(f"{w}-{i}" for w in range(3) for i in range(15))
    assert all(len(r["user_hmacs"]) == len(IDS) for r in records)
    assert records[0]["user_hmacs"][0] == pseudonym(b"secret", IDS[0])
    assert str(IDS[0]) not in path.read_text()


def test_record_time_is_utc_to_the_millisecond(tmp_path):
    log = AuditLog(tmp_path / "audit.log", b"secret")
    before = datetime.now(timezone.utc)
    for i in range(3):
        log.write(request_id=str(i), key_id="k", endpoint="/v1/churn/score", status=200, elapsed_ms=1.0, detail=None)
    after = datetime.now(timezone.utc)
    for line in (tmp_path / "audit.log").read_text().splitlines():
        stamp = json.loads(line)["time"]
        assert len(stamp) == len("2026-01-01T00:00:00.000+00:00") and stamp.endswith("+00:00")
        assert before - timedelta(milliseconds=1) <= datetime.fromisoformat(stamp) <= after
