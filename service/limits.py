"""Requests bounded before they are handled: an absurd request head is refused with 414 (request target)
or 431 (headers) before the key is checked, and a body above the documented size with 413 before it is
read; a form body (multipart or URL-encoded) with 400, as this API takes JSON only.

The server (uvicorn on httptools) passed a 60 KB path (only a 1 MB one was a 400) and a 30 MB header
to the application. 8 KiB of request target is what common servers allow (nginx's 8k header buffer, Apache's
LimitRequestLine 8190); 32 KiB of headers is nginx's default total (four 8k buffers). The server has
read a head before the application sees it, so these bound what is handled and logged, not what is
received: a proxy in front (nginx's large_client_header_buffers) bounds that.

The largest legal request, 10,000 records with every feature at full precision, is about 24 MB of
JSON; the limit (`OPSCORE_MAX_BODY_MB`, 64 by default) is more than twice that. A declared
Content-Length above it is refused before one byte of the body is read; a body sent without one
(chunked) is counted as it arrives and refused once it passes the limit.
"""

from __future__ import annotations

import json


def header(scope, name: bytes) -> bytes | None:
    """The first value of a request header (names come lower-case from the server)."""
    for key, value in scope.get("headers", []):
        if key == name:
            return value
    return None


def _declared_length(scope) -> int | None:
    value = header(scope, b"content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def target_bytes(scope) -> int:
    """The request target's length as sent: its path (raw, before percent-decoding) and query."""
    path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string", b"")
    return len(path) + (1 + len(query) if query else 0)


def header_bytes(scope) -> int:
    """The header block's length as sent: each `name: value` line with its CRLF."""
    return sum(len(name) + len(value) + 4 for name, value in scope.get("headers", ()))


class HeadLimit:
    """414 for a request target above `max_target_bytes`, 431 for headers above `max_header_bytes`."""

    def __init__(self, app, max_target_bytes: int, max_header_bytes: int):
        self.app = app
        self.max_target_bytes = max_target_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            if target_bytes(scope) > self.max_target_bytes:
                return await _answer(send, scope, 414, f"request target above {self.max_target_bytes} bytes")
            if header_bytes(scope) > self.max_header_bytes:
                return await _answer(send, scope, 431, f"request headers above {self.max_header_bytes} bytes")
        return await self.app(scope, receive, send)


class BodyLimit:
    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            return await self._refuse(send, scope)
        if _form_body(scope):
            return await _answer(send, scope, 400, "content-type: form bodies (multipart/form-data, with or without "
                                                   "a boundary, or URL-encoded) are not accepted; this API takes "
                                                   "application/json")
        seen, started, refused = 0, False, False

        async def counting_receive():
            # Past the limit, the 413 goes out at once and the app is told the client has gone: an
            # exception raised here would surface from the app's body read as a 500.
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes and not started:
                    refused = True
                    await self._refuse(send, scope)
                    return {"type": "http.disconnect"}
            return message

        async def watching_send(message):
            nonlocal started
            if refused:  # the app's own answer to a body it never got whole is not sent
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except Exception:
            if not refused:
                raise

    async def _refuse(self, send, scope) -> None:
        await _answer(send, scope, 413, f"request body above the limit of {self.max_bytes} bytes")


def _form_body(scope) -> bool:
    """The framework parses a form body into fields: a multipart body its parser cannot read (no boundary, or
    not multipart at all) was a 500, and a URL-encoded JSON body became a field named by the caller's data."""
    kind = (header(scope, b"content-type") or b"").split(b";")[0].strip().lower()
    return kind in (b"multipart/form-data", b"application/x-www-form-urlencoded")


async def _answer(send, scope, status: int, message: str) -> None:
    """A refusal before the body is read; the connection is closed, as the body may still be coming."""
    body = json.dumps({"error": message, "request_id": scope.get("state", {}).get("request_id")}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
