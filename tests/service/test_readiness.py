"""Readiness: a missing or corrupt model never yields a score; it keeps /readyz red and the log says which."""

from __future__ import annotations

import shutil

import httpx
from mlflow import MlflowClient

from scoring.registry import CHAMPION, FORECAST_MODEL, MODEL_NAMES
from tests.service.conftest import start_server, stop_server


def _model_dir(home, name):
    return next(p for p in (home / "models" / name).iterdir() if p.is_dir())


def test_ready_serves_the_registry_champions(server, keys):
    """Ready means every model loaded: the versions served are the ones the registry calls champion."""
    assert httpx.get(server.url + "/readyz").status_code == 200
    client = MlflowClient()
    served = httpx.get(server.url + "/v1/models", headers={"Authorization": f"Bearer {keys['risk']}"}).json()["models"]
    assert {m["name"]: m["version"] for m in served} == {
        name: str(client.get_model_version_by_alias(name, CHAMPION).version)
        for name in [*MODEL_NAMES.values(), FORECAST_MODEL]}


def test_missing_model_keeps_readiness_red(all_champions, broken_home, tmp_path, keys):
    home = broken_home("missing")
    shutil.rmtree(home / "models" / "credit_features")
    s = start_server(all_champions, home, tmp_path / "serve.log", wait_ready=False)
    try:
        assert httpx.get(s.url + "/readyz").status_code == 503
        r = httpx.post(s.url + "/v1/credit/score", json={"user_ids": [1]}, headers={"Authorization": f"Bearer {keys['risk']}"})
        assert r.status_code == 503 and "credit" in r.text
        assert "credit_features is not in the BentoML store" in s.log_text()
    finally:
        stop_server(s)


def test_corrupt_artifact_keeps_readiness_red(all_champions, broken_home, tmp_path, keys):
    home = broken_home("corrupt")
    model_dir = _model_dir(home, "churn")
    booster = next(model_dir.rglob("booster.txt"))
    booster.write_text(booster.read_text().replace("tree", "tr3e", 1))
    s = start_server(all_champions, home, tmp_path / "serve.log", wait_ready=False)
    try:
        assert httpx.get(s.url + "/readyz").status_code == 503
        r = httpx.post(s.url + "/v1/churn/score", json={"user_ids": [1]}, headers={"Authorization": f"Bearer {keys['campaign']}"})
        assert r.status_code == 503
        assert "churn failed to load" in s.log_text() and "checksum" in s.log_text()
    finally:
        stop_server(s)


def test_a_corrupt_seed_keeps_readiness_red(all_champions, broken_home, tmp_path):
    """A seed whose file changed would expand another audience: readiness stays red and the log names it."""
    home = broken_home("seed")
    seed = next(_model_dir(home, "feature_snapshot").rglob("seeds/top_value_20pct.parquet"))
    data = bytearray(seed.read_bytes())
    data[len(data) // 2] ^= 1
    seed.write_bytes(bytes(data))
    s = start_server(all_champions, home, tmp_path / "serve.log", wait_ready=False)
    try:
        assert httpx.get(s.url + "/readyz").status_code == 503
        assert "seeds failed to load" in s.log_text() and "top_value_20pct" in s.log_text()
    finally:
        stop_server(s)


def test_an_audit_log_that_cannot_be_written_keeps_readiness_red(all_champions, broken_home, tmp_path):
    (tmp_path / "not-a-folder").write_text("")
    settings = all_champions.model_copy(update={"audit_log": tmp_path / "not-a-folder" / "audit.log"})
    s = start_server(settings, broken_home("audit"), tmp_path / "serve.log", wait_ready=False)
    try:
        assert httpx.get(s.url + "/readyz").status_code == 503
        assert "every call will be refused" in s.log_text() and "Traceback" not in s.log_text()
    finally:
        stop_server(s)

