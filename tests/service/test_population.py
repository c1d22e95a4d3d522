"""Users outside a model's training population get their lifecycle state and a reason, not a score."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scoring.segments import LIFECYCLE, stage_index
from tests.service.test_http import post


@pytest.fixture(scope="module")
def silent(snapshot) -> list[int]:
    """Users churn was not trained for: no launch in the 30 days before the snapshot."""
    return snapshot[snapshot.active_days_30 == 0].sample(80, random_state=2).index.tolist()


@pytest.fixture(scope="module")
def active(snapshot) -> list[int]:
    return snapshot[(snapshot.active_days_30 >= 1) & (snapshot.loan_apps_all >= 1)].sample(80, random_state=2).index.tolist()


def expected_stage(snapshot, ids: list[int]) -> list[str]:
    rows = snapshot.loc[ids]
    return np.asarray(LIFECYCLE)[stage_index(rows.tenure_days.to_numpy(float),
                                             rows.days_since_last_active.to_numpy(float))].tolist()


@pytest.mark.parametrize("size", [1, 3, 80])  # the single-user lookup, an inline batch, a batch on the lane
def test_churn_answers_silent_users_with_their_lifecycle_and_a_reason(server, keys, snapshot, silent, size):
    ids = silent[:size]
    results = post(server, "/v1/churn/score", {"user_ids": ids}, keys["campaign"]).json()["results"]
    assert [r["user_id"] for r in results] == ids
    assert all(set(r) == {"user_id", "lifecycle", "status", "reason"} for r in results)
    assert {r["status"] for r in results} == {"out_of_population"}
    assert [r["lifecycle"] for r in results] == expected_stage(snapshot, ids)
    assert all("active_days_30" in r["reason"] for r in results)


def test_scored_and_unscored_users_keep_the_order_they_were_asked_in(server, keys, silent, active):
    ids = [active[0], silent[0], 999, *active[1:70], silent[1]]
    results = post(server, "/v1/churn/score", {"user_ids": ids}, keys["campaign"]).json()["results"]
    assert [r["user_id"] for r in results] == ids
    kinds = ["score" if "score" in r else r.get("status", "error") for r in results]
    assert kinds == ["score", "out_of_population", "error", *["score"] * 69, "out_of_population"]
    alone = post(server, "/v1/churn/score", {"user_ids": active[:70]}, keys["campaign"]).json()["results"]
    assert [r for r in results if "score" in r] == alone


def test_a_model_trained_on_everyone_scores_everyone(server, keys, silent):
    results = post(server, "/v1/abuse/score", {"user_ids": silent}, keys["campaign"]).json()["results"]
    assert all("score" in r for r in results)


def test_a_record_is_placed_by_its_own_values_and_scored_when_it_cannot_be(server, keys):
    records = [{"user_id": 1, "active_days_30": 0, "tenure_days": 400, "days_since_last_active": 200},
               {"user_id": 2, "active_days_30": 4}, {"user_id": 3}]
    results = post(server, "/v1/churn/score", {"records": records}, keys["campaign"]).json()["results"]
    assert results[0] == {"user_id": 1, "lifecycle": "silent_91_360", "status": "out_of_population",
                          "reason": results[0]["reason"]}
    assert "score" in results[1] and "score" in results[2]


def test_credit_declines_to_score_users_without_a_repayment_history(server, keys, snapshot):
    new_to_credit = snapshot[snapshot.loan_apps_all == 0].index[:5].tolist()
    results = post(server, "/v1/credit/score", {"user_ids": new_to_credit}, keys["risk"]).json()["results"]
    assert {r["status"] for r in results} == {"out_of_population"} and "loan_apps_all" in results[0]["reason"]


def test_the_audit_record_counts_them(server, keys, silent, active, all_champions):
    assert post(server, "/v1/churn/score", {"user_ids": [*silent[:3], 999, active[0]]}, keys["campaign"]).status_code == 200
    record = json.loads(all_champions.audit_log.read_text().splitlines()[-1])
    assert (record["n_users"], record["unknown"], record["out_of_population"]) == (5, 1, 3)
