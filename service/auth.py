"""The ASGI middleware in front of every endpoint: key and scope checks, and one audit line per call.

Which scopes may call a route is declared beside the endpoint itself (`RouteScopes.require`).
"""

from __future__ import annotations

import itertools
import json
import logging
import secrets
import time
from pathlib import Path

from scoring.settings import Settings
from service.audit import AuditLog
from service.keys import SCOPES, KeyStore
from service.limits import BodyLimit, HeadLimit, header
from service.routes import UNMATCHED, route_template

log = logging.getLogger("opscore.service")

OPEN_PATHS = {"/livez", "/readyz", "/metrics", "/healthz", "/docs", "/docs/", "/docs.json", "/"}
# The API page's scripts and styles: without them the page at / renders blank.
OPEN_PREFIXES = ("/static_content/",)


def is_open(path: str) -> bool:
    """A route anyone may call without a key (the API page's spec marks these as needing none)."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


class RouteScopes:
    """Routes and the scopes that may call them; a path under no declared route needs any valid key."""

    def __init__(self) -> None:
        self._routes: dict[str, frozenset[str]] = {}

    def require(self, route: str, *scopes: str) -> str:
        """Declare who may call `route` (returned, to pass on to the endpoint's decorator)."""
        unknown = set(scopes) - set(SCOPES)
        if not scopes or unknown:
            raise ValueError(f"{route}: scopes must be a non-empty subset of {list(SCOPES)}")
        self._routes[route] = frozenset(scopes)
        return route

    def needed(self, path: str) -> frozenset[str] | None:
        # A prefix, so that spellings such as a trailing slash are guarded as the route is.
        for route, scopes in self._routes.items():
            if path.startswith(route):
                return scopes
        return None


class AuthMiddleware:
    """401 without a valid key, 403 outside the key's scopes; one audit line per API call."""

    def __init__(self, app, keys_file: str, audit_file: str, audit_secret: str, scopes: RouteScopes):
        self.app = app
        self.scopes = scopes
        # A revoked key stops working within a second; a stat() per request cost a tenth of the middleware.
        self.keys = KeyStore(Path(keys_file), recheck_s=1.0, keep_last_good=True)
        self.audit = AuditLog(Path(audit_file), audit_secret.encode())
        # Request ids: this worker's random prefix and a counter, unique without a uuid4's
        # urandom call per request (a request id needs to be unique, not unguessable).
        self._id_prefix = secrets.token_hex(8)
        self._ids = itertools.count()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or is_open(scope["path"]):
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        request_id = f"{self._id_prefix}{next(self._ids):016x}"
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        path, endpoint = scope["path"], route_template(scope)  # audited by template: lines of bounded size
        key = self._bearer(scope)
        api_key = self.keys.verify(key) if key else None
        call = {"status": 500, "audited": False}

        def audit() -> None:
            if not call["audited"]:
                call["audited"] = True
                self.audit.write(
                    request_id=request_id, key_id=api_key.key_id if api_key else None, endpoint=endpoint,
                    status=call["status"], elapsed_ms=(time.perf_counter() - started) * 1000,
                    detail=state.get("audit"), path=path if endpoint == UNMATCHED else None,
                )

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                call["status"] = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
                call["start"] = message  # held back until the record is written
                return
            start = call.pop("start", None)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                # The record is on disk before the caller has its answer: a crash in between
                # would otherwise leave an answered call without an audit line.
                try:
                    audit()
                except OSError as e:
                    if start is None:  # a streamed answer has begun: cutting it short is all that is left
                        raise
                    log.error("audit log write failed (%s): request %s answered 503", e.strerror or e, request_id)
                    return await self._deny(send, 503, "the audit log cannot be written, so the call was not "
                                                       "answered", request_id, start["headers"][-1:])
            if start is not None:
                await send(start)
            await send(message)

        needed = self.scopes.needed(path)
        try:
            if api_key is None:
                await self._deny(send_wrapper, 401, "missing or unknown API key: send `Authorization: Bearer <key>`",
                                 request_id)
            elif needed is not None and not (api_key.scopes & needed):
                await self._deny(send_wrapper, 403, f"key scopes {sorted(api_key.scopes)} may not call {path} "
                                             f"(needs one of {sorted(needed)})", request_id)
            else:
                state["key_id"] = api_key.key_id
                await self.app(scope, receive, send_wrapper)
        finally:
            if "start" in call:  # a head was sent but no body: the caller got an error, not that status
                call["status"] = 500
            audit()  # a call that ended without a complete answer (a crash, a dropped client)

    @staticmethod
    def _bearer(scope) -> str | None:
        value = header(scope, b"authorization")
        if value is None:
            return None
        v = value.decode("latin-1")
        return v[7:].strip() if v.lower().startswith("bearer ") else None

    @staticmethod
    async def _deny(send, status: int, message: str, request_id: str, headers=()) -> None:
        body = json.dumps({"error": message, "request_id": request_id}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                *headers]})
        await send({"type": "http.response.body", "body": body})


def protect(service, settings: Settings, scopes: RouteScopes) -> None:
    """Put a BentoML service behind the head limits, the keys, the route scopes, the audit log and the body
    limit that the settings name."""
    # Outermost of ours: an absurd request head is refused before its key is checked or its path routed.
    service.add_asgi_middleware(HeadLimit, max_target_bytes=settings.max_target_bytes,
                                max_header_bytes=settings.max_header_bytes)
    service.add_asgi_middleware(AuthMiddleware, keys_file=str(settings.keys_file.resolve()),
                                audit_file=str(settings.audit_log.resolve()),
                                audit_secret=settings.audit_secret.get_secret_value(), scopes=scopes)
    # Inside the key check (middlewares added first are outermost), so that a refused body is audited too.
    service.add_asgi_middleware(BodyLimit, max_bytes=settings.max_body_mb * 1024 * 1024)
