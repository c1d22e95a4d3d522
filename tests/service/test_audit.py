"""The audit log shared by the server's worker processes: whole records, no raw ids."""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing as mp
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from service.audit import AuditLog, pseudonym
from service.auth import AuthMiddleware, RouteScopes
from service.keys import KeyStore

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


def test_a_call_whose_record_cannot_be_written_is_not_answered(tmp_path):
    """/dev/full refuses every write (ENOSPC): the caller gets a 503, not an unaudited answer."""
    async def app(scope, receive, send):
        scope["state"]["audit"] = {"n_users": 1}
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"results":[{"score":0.5}]}'})

    key = KeyStore(tmp_path / "keys.json").add("ops", ["campaign"])
    sent: dict[str, list] = {}
    for audit_file in (tmp_path / "audit.log", Path("/dev/full")):
        middleware = AuthMiddleware(app, str(tmp_path / "keys.json"), str(audit_file), "secret", RouteScopes())
        scope = {"type": "http", "path": "/v1/churn/score", "headers": [(b"authorization", f"Bearer {key}".encode())]}
        sent[audit_file.name] = messages = []

        async def send(message, messages=messages):
            messages.append(message)

        asyncio.run(middleware(scope, None, send))
    assert [m.get("status") for m in sent["audit.log"]] == [200, None] and b"score" in sent["audit.log"][1]["body"]
    assert [m.get("status") for m in sent["full"]] == [503, None]
    assert any(name == b"x-request-id" for name, _ in sent["full"][0]["headers"])
    assert b"audit log" in sent["full"][1]["body"] and b"score" not in sent["full"][1]["body"]


def test_a_call_that_fails_after_its_head_is_audited_as_an_error(tmp_path):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("failed before the body")

    key = KeyStore(tmp_path / "keys.json").add("ops", ["campaign"])
    middleware = AuthMiddleware(app, str(tmp_path / "keys.json"), str(tmp_path / "audit.log"), "secret", RouteScopes())
    scope = {"type": "http", "path": "/v1/churn/score", "headers": [(b"authorization", f"Bearer {key}".encode())]}
    sent = []

    async def send(message):
        sent.append(message)

    with pytest.raises(RuntimeError):
        asyncio.run(middleware(scope, None, send))
    assert sent == []  # the head was held back, so the server's error handler can still answer 500
    assert json.loads((tmp_path / "audit.log").read_text())["status"] == 500


def test_a_deleted_or_rotated_audit_file_is_reopened_and_nothing_is_lost(tmp_path):
    path = tmp_path / "audit.log"
    log = AuditLog(path, b"secret")

    def write(request_id: str) -> None:
        log.write(request_id=request_id, key_id="k", endpoint="/v1/churn/score", status=200, elapsed_ms=1.0,
                  detail={"user_ids": [1]})

    write("first")
    path.unlink()  # an operator's rm
    write("after-delete")
    assert [json.loads(x)["request_id"] for x in path.read_text().splitlines()] == ["after-delete"]
    path.rename(tmp_path / "audit.log.1")  # logrotate without copytruncate
    write("after-rotate")
    assert [json.loads(x)["request_id"] for x in path.read_text().splitlines()] == ["after-rotate"]
    assert [json.loads(x)["request_id"] for x in (tmp_path / "audit.log.1").read_text().splitlines()] == ["after-delete"]


def test_an_audit_log_that_cannot_be_opened_refuses_calls_and_says_so_once(tmp_path, caplog):
    (tmp_path / "not-a-folder").write_text("")
    path = tmp_path / "not-a-folder" / "audit.log"
    with caplog.at_level(logging.ERROR, logger="opscore.service"):
        log = AuditLog(path, b"secret")  # no traceback, no crash
    assert not log.usable()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and f"cannot open {path}" in errors[0] and "every call will be refused" in errors[0]
    with pytest.raises(OSError):
        log.write(request_id="r", key_id="k", endpoint="/v1/churn/score", status=200, elapsed_ms=1.0, detail=None)


def test_a_failed_write_is_remembered_until_the_log_has_room_again(tmp_path):
    log = AuditLog(tmp_path / "audit.log", b"secret")
    log.path = Path("/dev/full")  # ENOSPC on every write, as a full disk
    with pytest.raises(OSError):
        log.write(request_id="r", key_id="k", endpoint="/v1/churn/score", status=200, elapsed_ms=1.0, detail=None)
    assert log.failure and "No space left" in log.failure
    log.path = tmp_path / "audit.log"  # room again
    assert log.usable() and log.failure is None
