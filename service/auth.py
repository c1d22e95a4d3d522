"""API keys with scopes, and the ASGI middleware that checks them and writes the audit line.

A key looks like `ops_<key id>_<secret>`; the keys file stores only its SHA-256, so a leaked
file does not leak keys. Keys are compared with hmac.compare_digest and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from service.audit import AuditLog

log = logging.getLogger("opscore.service")

SCOPES = ("campaign", "risk")
# Which scopes may call which path prefix; any valid key may list the models.
ROUTE_SCOPES = {
    "/v1/churn/": {"campaign"},
    "/v1/response/": {"campaign"},
    "/v1/lookalike": {"campaign"},
    "/v1/abuse/": {"campaign", "risk"},
    "/v1/credit/": {"risk"},
    "/v1/models": set(SCOPES),
}
OPEN_PATHS = {"/livez", "/readyz", "/metrics", "/healthz", "/docs", "/docs.json", "/"}


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    scopes: frozenset[str]


class KeyStore:
    """The keys file, re-read when it changes so `keys add` (or a revocation) needs no restart.

    The server looks at the file at most every `recheck_s` seconds rather than on every request."""

    def __init__(self, path: Path, recheck_s: float = 0.0):
        self.path = path
        self.recheck_s = recheck_s
        self._checked = -float("inf")
        self._version: tuple[int, int, int] | None = None
        self._keys: dict[str, dict] = {}
        self._api_keys: dict[str, ApiKey] = {}
        # Keys that passed the hash check since the file was last loaded: a client sends the same
        # key on every call. Emptied on every reload, so a revoked key is not remembered. They are
        # held in this worker's memory only (as every request's key is, briefly), never written.
        self._verified: dict[str, ApiKey] = {}

    def _load(self) -> dict[str, dict]:
        now = time.monotonic()
        if now - self._checked < self.recheck_s:
            return self._keys
        self._checked = now
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._keys, self._api_keys, self._version, self._verified = {}, {}, None, {}
            return {}
        # Every save replaces the file (a new inode), so two saves within one mtime tick still differ.
        version = (st.st_ino, st.st_mtime_ns, st.st_size)
        if version != self._version:
            keys = json.loads(self.path.read_text())
            api_keys = {k: ApiKey(k, v["name"], frozenset(v["scopes"])) for k, v in keys.items()}
            self._keys, self._api_keys, self._version, self._verified = keys, api_keys, version, {}
        return self._keys

    def add(self, name: str, scopes: list[str]) -> str:
        bad = [s for s in scopes if s not in SCOPES]
        if bad or not scopes:
            raise ValueError(f"scopes must be a non-empty subset of {list(SCOPES)}, got {scopes}")
        keys = dict(self._load())
        key_id = secrets.token_hex(4)
        key = f"ops_{key_id}_{secrets.token_urlsafe(24)}"
        keys[key_id] = {"name": name, "scopes": sorted(set(scopes)), "sha256": _digest(key),
                        "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        self._save(keys)
        return key

    def revoke(self, key_id: str) -> bool:
        keys = dict(self._load())
        if keys.pop(key_id, None) is None:
            return False
        self._save(keys)
        return True

    def _save(self, keys: dict[str, dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(keys, indent=2))
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)  # atomic: a server reading the file never sees half of it

    def list(self) -> list[ApiKey]:
        self._load()
        return list(self._api_keys.values())

    def verify(self, key: str) -> ApiKey | None:
        keys = self._load()
        known = self._verified.get(key)
        if known is not None:
            return known
        parts = key.split("_", 2)
        if len(parts) != 3 or parts[0] != "ops":
            return None
        entry = keys.get(parts[1])
        if entry is None or not hmac.compare_digest(_digest(key), entry["sha256"]):
            return None
        self._verified[key] = self._api_keys[parts[1]]
        return self._verified[key]


def required_scopes(path: str) -> set[str] | None:
    for prefix, scopes in ROUTE_SCOPES.items():
        if path.startswith(prefix):
            return scopes
    return None


class AuthMiddleware:
    """401 without a valid key, 403 outside the key's scopes; one audit line per API call."""

    def __init__(self, app, keys_file: str, audit_file: str, audit_secret: str):
        self.app = app
        # A revoked key stops working within a second; a stat() per request cost a tenth of the middleware.
        self.keys = KeyStore(Path(keys_file), recheck_s=1.0)
        self.audit = AuditLog(Path(audit_file), audit_secret.encode())
        # Request ids: this worker's random prefix and a counter, unique without a uuid4's
        # urandom call per request (a request id needs to be unique, not unguessable).
        self._id_prefix = secrets.token_hex(8)
        self._ids = itertools.count()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        request_id = f"{self._id_prefix}{next(self._ids):016x}"
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        path = scope["path"]
        key = self._bearer(scope)
        api_key = self.keys.verify(key) if key else None
        call = {"status": 500, "audited": False}

        def audit() -> None:
            if not call["audited"]:
                call["audited"] = True
                self.audit.write(
                    request_id=request_id, key_id=api_key.key_id if api_key else None, endpoint=path,
                    status=call["status"], elapsed_ms=(time.perf_counter() - started) * 1000,
                    detail=state.get("audit"),
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

        needed = required_scopes(path)
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
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                v = value.decode("latin-1")
                return v[7:].strip() if v.lower().startswith("bearer ") else None
        return None

    @staticmethod
    async def _deny(send, status: int, message: str, request_id: str, headers=()) -> None:
        body = json.dumps({"error": message, "request_id": request_id}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                *headers]})
        await send({"type": "http.response.body", "body": body})


def protect(service, settings) -> None:
    """Put a BentoML service behind the keys and the audit log that the settings name."""
    service.add_asgi_middleware(AuthMiddleware, keys_file=str(settings.keys_file.resolve()),
                                audit_file=str(settings.audit_log.resolve()),
                                audit_secret=settings.audit_secret.get_secret_value())
