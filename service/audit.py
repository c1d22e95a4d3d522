"""Audit log: one JSON line per call, with user ids only as keyed HMACs (no raw ids, features or keys)."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import orjson

log = logging.getLogger("opscore.service")


def pseudonym(secret: bytes, user_id: int | str) -> str:
    """A keyed hash (BLAKE2b's MAC mode): stable for joins by those who hold the secret, meaningless
    to others."""
    return pseudonyms(secret, [user_id])[0]


def pseudonyms(secret: bytes, user_ids: list[int | str]) -> list[str]:
    """`pseudonym` of many ids (whole numbers or text, hashed as their decimal or UTF-8 text); copying a
    keyed state skips re-hashing the key block for every id, which halves the cost of a 10,000-id call."""
    keyed = hashlib.blake2b(key=secret[:64], digest_size=12)
    out = []
    for u in user_ids:
        h = keyed.copy()
        h.update(u.encode() if type(u) is str else b"%d" % u)
        out.append(h.hexdigest())
    return out


class PseudonymTable:
    """Every snapshot user's pseudonym, computed once at start-up (~2 µs a user). A 10,000-id call
    then looks its pseudonyms up instead of hashing them one by one, which took a third of its time."""

    def __init__(self, secret: bytes, sorted_ids: np.ndarray):
        self.secret = secret
        self._hex = np.array([h.encode() for h in pseudonyms(secret, sorted_ids.tolist())], dtype="S24")

    def at(self, rows: np.ndarray) -> bytes:
        """The pseudonyms of snapshot rows, as the JSON array the audit record embeds (bytes rather than an
        orjson Fragment: it crosses back from a batch process, and a Fragment does not pickle)."""
        return self._json_array(self._hex[rows].tolist())

    def at_row(self, row: int) -> bytes:
        """`at` of one row."""
        return self._json_array([self._hex[row]])

    def of(self, user_ids: list[int], rows: np.ndarray, found: np.ndarray) -> bytes:
        """The pseudonyms of requested ids, in order; ids not in the snapshot are hashed here."""
        hexes = self._hex[rows].tolist()
        unknown = np.flatnonzero(~found).tolist()
        for i, h in zip(unknown, pseudonyms(self.secret, [user_ids[i] for i in unknown])):
            hexes[i] = h.encode()
        return self._json_array(hexes)

    @staticmethod
    def _json_array(hexes: list[bytes]) -> bytes:
        return b'["' + b'","'.join(hexes) + b'"]' if hexes else b"[]"


def bounded(path: str) -> str:
    """A path cut to AUDIT_PATH_CHARS, with a marker saying how much was left out."""
    if len(path) <= AUDIT_PATH_CHARS:
        return path
    return f"{path[:AUDIT_PATH_CHARS]}...[{len(path) - AUDIT_PATH_CHARS} more chars]"


# Every audit log of this process, for readiness: a worker whose calls cannot be audited is not ready.
AUDIT_LOGS: list[AuditLog] = []
# A record keeps at most this many characters of a path no route serves, so that its size is bounded
# whatever the request (a line for a 60 KB probe stays under half a kilobyte).
AUDIT_PATH_CHARS = 256
# Free space the log's folder needs before a failed log counts as usable again.
RECOVERY_FREE_BYTES = 1 << 20


class AuditLog:
    def __init__(self, path: Path, secret: bytes):
        self.path = path
        self.secret = secret
        self._lock = threading.Lock()
        self._second: tuple[int, str] = (-1, "")
        # Why the last record could not be written (None: it was): readiness turns red meanwhile.
        self.failure: str | None = None
        self._fd: int | None = None
        self._inode = (0, 0)
        try:
            # Kept open in append mode, and each record written with one write(): with O_APPEND the
            # kernel places every record whole at the end, so the workers sharing this file never
            # interleave (a buffered file would split a 10,000-id record into several writes).
            self._fd, self._inode = self._open()
        except OSError as e:  # one clear line; every call is then refused (503) until it can be opened
            self.failure = f"cannot open {path}: {e.strerror or e}"
            log.error("audit log %s: every call will be refused until it can be written", self.failure)
        AUDIT_LOGS.append(self)

    def _open(self) -> tuple[int, tuple[int, int]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        st = os.fstat(fd)
        return fd, (st.st_dev, st.st_ino)

    def usable(self) -> bool:
        """Whether calls can be audited: the last record was written, or, after a failure, the file
        opens and its folder has room again (probed without writing, so no empty record is logged)."""
        if self.failure is None:
            return True
        try:
            self._current_fd()
            room = shutil.disk_usage(self.path.parent).free >= RECOVERY_FREE_BYTES
        except OSError:
            return False
        if room:
            self.failure = None
        return room

    def _current_fd(self) -> int:
        """The open file, reopened when the path no longer names it: deleted, or rotated away by
        logrotate (without copytruncate). Checked on every record (a stat, ~1 µs), so that no record
        goes to a file nobody will read."""
        try:
            st = os.stat(self.path)
            moved = (st.st_dev, st.st_ino) != self._inode
        except FileNotFoundError:
            moved = True
        if moved or self._fd is None:
            old = self._fd
            self._fd, self._inode = self._open()
            if old is not None:
                os.close(old)
        return self._fd

    def _utc_now(self) -> str:
        """The time as datetime's isoformat(timespec="milliseconds") in UTC writes it, with the
        text up to the second formatted once a second: datetime.now was a sixth of a write."""
        second, ms = divmod(time.time_ns() // 1_000_000, 1000)
        if second != self._second[0]:
            self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        return f"{self._second[1]}.{ms:03d}+00:00"

    def write(self, *, request_id: str, key_id: str | None, endpoint: str, status: int, elapsed_ms: float,
              detail: dict | None, path: str | None = None) -> None:
        """One record: `endpoint` is the route's template; `path`, given only for a path no route serves,
        is kept up to AUDIT_PATH_CHARS."""
        detail = dict(detail or {})
        ids = detail.pop("user_ids", [])
        # Callers holding a PseudonymTable pass the pseudonyms ready-made (a JSON array's bytes).
        hmacs = detail.pop("user_hmacs", None)
        record = {
            "time": self._utc_now(),
            "request_id": request_id,
            "key_id": key_id,
            "endpoint": endpoint,
            **({"path": bounded(path)} if path is not None else {}),
            "status": status,
            "elapsed_ms": round(elapsed_ms, 2),
            "n_users": detail.pop("n_users", len(ids)),
            "models": detail.pop("models", {}),
            "user_hmacs": pseudonyms(self.secret, ids) if hmacs is None else orjson.Fragment(hmacs),
            **detail,
        }
        line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        with self._lock:
            try:
                written = os.write(self._current_fd(), line)
            except OSError as e:
                self.failure = f"cannot write {self.path}: {e.strerror or e}"
                raise
        if written != len(line):  # only on a full disk or a signal: say so rather than drop part of a record
            self.failure = f"wrote {written} of {len(line)} bytes to {self.path}"
            raise OSError(f"audit log: {self.failure}")
        self.failure = None
