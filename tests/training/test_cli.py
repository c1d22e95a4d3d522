"""The command lines explain themselves and refuse bad arguments clearly."""

from __future__ import annotations

import json
import subprocess
import sys


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env)


def test_training_help_lists_every_stage():
    out = run("-m", "training", "--help").stdout
    for cmd in ("simulate", "load", "features", "train", "seeds", "lookalike-index", "monitor"):
        assert cmd in out


def test_simulate_refuses_too_few_days():
    r = run("-m", "training", "simulate", "--days", "30")
    assert r.returncode == 2 and "--days must be at least 120" in r.stderr


def test_keys_add_prints_the_key_once_and_stores_only_its_hash(tmp_path):
    keys_file = tmp_path / "keys.json"
    env = {"OPSCORE_KEYS_FILE": str(keys_file), "PATH": "/usr/bin:/bin"}
    r = run("-m", "service", "keys", "add", "crm", "--scopes", "campaign", env=env)
    key = r.stdout.strip()
    assert r.returncode == 0 and key.startswith("ops_")
    stored = keys_file.read_text()
    assert key not in stored and key.split("_", 2)[2] not in stored
    entry = next(iter(json.loads(stored).values()))
    assert entry["name"] == "crm" and entry["scopes"] == ["campaign"]
    listed = run("-m", "service", "keys", "list", env=env).stdout
    assert "crm" in listed and key not in listed
    bad = run("-m", "service", "keys", "add", "x", "--scopes", "admin", env=env)
    assert bad.returncode != 0 and "scopes" in bad.stderr
