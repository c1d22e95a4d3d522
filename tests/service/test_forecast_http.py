"""GET /v1/forecast/disbursement over the real server: the stored forecast, its scopes, its errors, its readiness."""

from __future__ import annotations

import httpx
import pytest

from scoring.registry import FORECAST_MODEL
from tests.service.conftest import start_server, stop_server

FORECAST = "/v1/forecast/disbursement"


def get(server, key: str | None, query: str = "") -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(server.url + FORECAST + query, headers=headers)


@pytest.mark.parametrize("scope", ["campaign", "risk"])
def test_the_stored_forecast_is_served_to_either_scope(server, keys, forecast_run, scope):
    r = get(server, keys[scope], "?days=14")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == {"name": FORECAST_MODEL, "version": forecast_run.version, "run_id": forecast_run.run_id,
                             "forecaster": forecast_run.chosen}
    assert body["origin"] == forecast_run.stored.origin and body["level"] == 0.8
    assert [d["date"] for d in body["days"]] == [d.date for d in forecast_run.stored.days[:14]]
    assert all(d["lower"] <= d["forecast"] <= d["upper"] for d in body["days"])
    assert len(get(server, keys[scope]).json()["days"]) == 14  # the default


def test_the_whole_stored_horizon_and_no_more(server, keys, forecast_run):
    horizon = forecast_run.stored.horizon
    assert len(get(server, keys["risk"], f"?days={horizon}").json()["days"]) == horizon
    for bad in (0, -3, horizon + 1, "abc", 2.5):
        r = get(server, keys["risk"], f"?days={bad}")
        assert r.status_code == 400 and r.json()["field"] == "days", (bad, r.text)
        assert str(bad) not in r.json()["error"]


def test_a_key_is_needed(server):
    assert get(server, None).status_code == 401


def test_a_corrupt_forecast_keeps_readiness_red(all_champions, broken_home, tmp_path, keys):
    home = broken_home("forecast")
    stored = next((home / "models" / FORECAST_MODEL).rglob("forecast.json"))
    stored.write_text(stored.read_text().replace('"forecast": ', '"forecast": 1', 1))
    s = start_server(all_champions, home, tmp_path / "serve.log", wait_ready=False)
    try:
        assert httpx.get(s.url + "/readyz").status_code == 503
        assert get(s, keys["campaign"]).status_code == 503
        assert "forecast failed to load" in s.log_text() and "checksum" in s.log_text()
    finally:
        stop_server(s)
