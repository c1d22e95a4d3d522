"""One copy whatever the worker count: every worker maps the snapshot's matrix and the arrays derived from
it, which the first worker computes and a restarted server finds rather than computing again."""

from __future__ import annotations

import json
import os
import time
from datetime import date, timedelta
from pathlib import Path

import httpx

from scoring.artifacts import file_sha256
from scoring.snapshot import VALUES_FILE
from service.launch import descendants, parent
from tests.service.conftest import start_server, stop_server

SEND = (date.today() + timedelta(days=3)).isoformat()


def plan(server, key: str) -> None:
    """A plan over the whole base, waiting while the per-arm table is computed (503 with Retry-After)."""
    body = {"audience": {"all": True}, "send_date": SEND, "budget": 50.0, "holdout_share": 0.0}
    for _ in range(60):
        r = httpx.post(server.url + "/v1/campaigns/plan", json=body, headers={"Authorization": f"Bearer {key}"},
                       timeout=120)
        if r.status_code != 503:
            break
        time.sleep(2)
    assert r.status_code in (200, 201), r.text


def entries(folder: Path) -> dict[str, dict[str, int]]:
    """Each derived entry by what it holds, with its files' modification times."""
    out = {}
    for manifest in folder.glob("*/derived.json"):
        kind = json.loads(manifest.read_text())["key"]["of"]
        assert kind not in out, f"two entries of {kind}"
        out[kind] = {p.name: p.stat().st_mtime_ns for p in manifest.parent.iterdir()}
    return out


def workers_mapping(server, name: str) -> int:
    """How many of the server's workers (its children, not their batch processes) have a file of this
    name mapped."""
    count = 0
    for pid in descendants(server.process.pid):
        if parent(pid) != server.process.pid:
            continue
        try:
            count += any(line.rstrip().endswith(name) for line in Path(f"/proc/{pid}/maps").read_text().splitlines())
        except OSError:
            continue
    return count


def test_workers_map_one_snapshot_and_a_restart_computes_nothing(server, all_champions, bento_home, keys, tmp_path):
    plan(server, keys["campaign"])
    assert workers_mapping(server, VALUES_FILE) == 2, "both workers map the snapshot's matrix"
    first = entries(all_champions.derived_dir)
    assert {"abuse", "planning"} <= set(first)
    assert "pseudonyms" not in first, "the audit's pseudonyms beside the ids on disk would undo its secret"
    again = start_server(all_champions, bento_home, tmp_path / "serve.log")
    try:
        plan(again, keys["campaign"])
        assert entries(all_champions.derived_dir) == first, "a restarted server computed derived arrays again"
    finally:
        stop_server(again)
    assert "computing them again" not in again.log_text()


def test_a_damaged_derived_array_is_computed_again_not_served(server, all_champions, bento_home, keys, tmp_path):
    plan(server, keys["campaign"])
    entry = next(p.parent for p in all_champions.derived_dir.glob("*/derived.json")
                 if json.loads(p.read_text())["key"]["of"] == "abuse")
    path = entry / "score.npy"
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF
    os.replace(_written(path.with_suffix(".tmp"), bytes(data)), path)
    again = start_server(all_champions, bento_home, tmp_path / "serve.log")
    try:
        assert httpx.get(again.url + "/readyz", timeout=10).status_code == 200
    finally:
        stop_server(again)
    assert "computing them again" in again.log_text()
    manifest = json.loads((entry / "derived.json").read_text())
    assert file_sha256(path) == manifest["sha256"]["score.npy"]


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
