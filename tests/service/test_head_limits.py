"""Absurd request heads are refused before the key is checked (414, 431), and an audit line stays small
whatever the path."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket

import pytest

from scoring.settings import Settings
from service.audit import AUDIT_PATH_CHARS
from service.auth import AuthMiddleware, RouteScopes
from service.limits import HeadLimit, header_bytes, target_bytes

LIMITS = Settings()


def through(middleware, scope: dict) -> list[dict]:
    sent = []

    async def send(message):
        sent.append(message)

    asyncio.run(middleware({"type": "http", "method": "GET", "headers": [], **scope}, None, send))
    return sent


async def reached(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"reached"})


def status(scope: dict, target: int = 100, headers: int = 1000) -> int:
    return through(HeadLimit(reached, max_target_bytes=target, max_header_bytes=headers), scope)[0]["status"]


def test_the_request_target_and_the_headers_are_measured_as_sent():
    scope = {"path": "/a b", "raw_path": b"/a%20b", "query_string": b"k=1", "headers": [(b"host", b"x")]}
    assert target_bytes(scope) == len("/a%20b?k=1") and header_bytes(scope) == len("host: x\r\n")
    assert target_bytes({"path": "/ab", "query_string": b""}) == 3


def test_heads_over_the_limits_are_refused_and_those_at_them_pass():
    assert status({"path": "/" + "a" * 99}) == 200
    assert status({"path": "/" + "a" * 100}) == 414
    assert status({"path": "/a", "query_string": b"q=" + b"a" * 97}) == 414  # the query counts
    line = len("x-pad: \r\n")
    assert status({"path": "/a", "headers": [(b"x-pad", b"b" * (1000 - line))]}) == 200
    assert status({"path": "/a", "headers": [(b"x-pad", b"b" * (1001 - line))]}) == 431


def test_refusals_name_the_limit_and_echo_nothing():
    mark = secrets.token_hex(8)
    sent = through(HeadLimit(reached, max_target_bytes=100, max_header_bytes=1000), {"path": f"/{mark}" * 20})
    body = json.loads(sent[1]["body"])
    assert "above 100 bytes" in body["error"] and mark not in sent[1]["body"].decode()
    assert (b"connection", b"close") in sent[0]["headers"]


def test_an_audit_line_for_a_60kb_path_stays_small(tmp_path):
    """With the head limit raised far enough to let it through, a 60 KB path still makes a short line."""
    audit = tmp_path / "audit.log"
    middleware = AuthMiddleware(reached, str(tmp_path / "keys.json"), str(audit), "secret", RouteScopes())
    path = "/probe-" + "a" * 60_000
    assert through(middleware, {"path": path})[0]["status"] == 401
    line = audit.read_text()
    record = json.loads(line)
    assert record["endpoint"] == "unmatched" and record["path"].startswith("/probe-aaaa")
    assert len(record["path"]) < AUDIT_PATH_CHARS + 32 and record["path"].endswith(f"[{len(path) - AUDIT_PATH_CHARS} more chars]")
    assert len(line) < 1024


def raw_request(server, target: str, extra_headers: str = "") -> bytes:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{extra_headers}\r\n".encode())
        answer = b""
        while chunk := conn.recv(65536):  # the server closes the connection after a refusal
            answer += chunk
    return answer


def test_a_60kb_request_line_is_414_and_leaves_no_trace(server, all_champions):
    mark = secrets.token_hex(8)
    audited = all_champions.audit_log.read_text()
    answer = raw_request(server, f"/v1/churn/score/{mark}" + "a" * 60_000)
    assert answer.startswith(b"HTTP/1.1 414") and f"above {LIMITS.max_target_bytes} bytes".encode() in answer
    assert mark not in server.log_text() and all_champions.audit_log.read_text() == audited  # refused before auth


def test_a_100kb_header_is_431(server):
    mark = secrets.token_hex(8)
    answer = raw_request(server, "/v1/models", f"X-Pad: {mark}{'b' * 100_000}\r\n")
    assert answer.startswith(b"HTTP/1.1 431") and mark.encode() not in answer and mark not in server.log_text()


def test_an_audit_line_for_a_long_unknown_path_over_http_stays_small(server, all_champions):
    path = f"/probe-{secrets.token_hex(8)}" + "a" * (LIMITS.max_target_bytes - 100)
    assert raw_request(server, path, "Connection: close\r\n").startswith(b"HTTP/1.1 401")
    line = all_champions.audit_log.read_text().splitlines()[-1]
    assert json.loads(line)["path"].startswith(path[:AUDIT_PATH_CHARS]) and len(line) < 1024


@pytest.mark.parametrize("target", ["/v1/models", "/readyz"])
def test_ordinary_requests_pass_the_head_limits(server, keys, target):
    answer = raw_request(server, target, f"Authorization: Bearer {keys['risk']}\r\nConnection: close\r\n")
    assert answer.startswith(b"HTTP/1.1 200")
