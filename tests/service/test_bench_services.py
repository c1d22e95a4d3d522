"""The benchmark's reference services (bench/) load the same store and answer the same call as the
service: a reference that fails would turn its figures into error counts."""

from __future__ import annotations

import httpx
import pytest

from tests.service.conftest import start_server_of, stop_server


@pytest.mark.parametrize("target", ["bench.bare_service:Bare", "bench.batched_service:Batched"])
def test_a_reference_service_answers_a_single_user(target, server, all_champions, broken_home, keys, snapshot,
                                                    tmp_path):
    uid = snapshot.index[snapshot.active_days_30 >= 1][0].item()
    auth = {"Authorization": f"Bearer {keys['campaign']}"}
    ours = httpx.post(server.url + "/v1/churn/score", json={"user_ids": [uid]}, headers=auth, timeout=60)
    # On a copy of the store: a server stopping clears the metrics folder of its BENTOML_HOME.
    home = broken_home(target.rsplit(":", 1)[1].lower())
    reference = start_server_of(target, all_champions, home, tmp_path / "serve.log")
    try:
        r = httpx.post(reference.url + "/v1/churn/score", json={"user_ids": [uid]}, headers=auth, timeout=60)
    finally:
        stop_server(reference)
    assert r.status_code == 200, r.text
    if target.endswith("Batched"):  # the same model on the same snapshot: the same score
        assert r.json()[0]["score"] == pytest.approx(ours.json()["results"][0]["score"])
