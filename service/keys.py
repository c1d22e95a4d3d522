"""API keys with scopes, kept as SHA-256 hashes in the keys file.

A key looks like `ops_<key id>_<secret>`; the keys file stores only its SHA-256, so a leaked
file does not leak keys. Keys are compared with hmac.compare_digest and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger("opscore.service")

SCOPES = ("campaign", "risk")


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

    def __init__(self, path: Path, recheck_s: float = 0.0, keep_last_good: bool = False):
        self.path = path
        self.recheck_s = recheck_s
        # The server keeps the last good keys when the file turns bad; the CLI refuses, so that
        # `keys add` never writes over a file it could not read.
        self.keep_last_good = keep_last_good
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
            try:
                keys, api_keys = self._parse(self.path.read_text())
            except ValueError as e:
                if not self.keep_last_good:
                    raise ValueError(f"keys file {self.path} is unusable: {e}") from None
                # The server goes on with the keys it had (none at start-up: every call 401), says
                # once which file is wrong and how, and picks the file up again once it is mended.
                log.error("keys file %s is unusable (%s): the last good keys stay in force", self.path, e)
                self._version = version
                return self._keys
            self._keys, self._api_keys, self._version, self._verified = keys, api_keys, version, {}
        return self._keys

    @staticmethod
    def _parse(text: str) -> tuple[dict[str, dict], dict[str, ApiKey]]:
        """The keys of a file's text; ValueError saying what is wrong (never quoting the file)."""
        try:
            keys = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"not JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
        if not isinstance(keys, dict):
            raise ValueError("not a JSON object of key ids")
        bad = [k for k, v in keys.items() if not (isinstance(v, dict) and {"name", "scopes", "sha256"} <= set(v))]
        if bad:
            raise ValueError(f"{len(bad)} entries lack name, scopes or sha256")
        return keys, {k: ApiKey(k, v["name"], frozenset(v["scopes"])) for k, v in keys.items()}

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
