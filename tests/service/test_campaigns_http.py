"""Campaign plans over HTTP: constraints never exceeded, exclusions and caps honoured, a random holdout
never contacted, unservable plans answered with reasons, bad bodies refused, plans kept across a restart."""

from __future__ import annotations

import io
import json
from datetime import date, timedelta

import httpx
import pandas as pd
import pytest

from tests.service.conftest import start_server, stop_server

SEND = (date.today() + timedelta(days=3)).isoformat()


def post(server, key, body):
    return httpx.post(server.url + "/v1/campaigns/plan", json=body, headers={"Authorization": f"Bearer {key}"},
                      timeout=300)


def get(server, key, path, **params):
    return httpx.get(server.url + path, params=params, headers={"Authorization": f"Bearer {key}"}, timeout=120)


def all_assignments(server, key, plan_id) -> pd.DataFrame:
    r = get(server, key, f"/v1/campaigns/{plan_id}/assignments", format="parquet")
    assert r.status_code == 200, r.text
    return pd.read_parquet(io.BytesIO(r.content))


@pytest.fixture(scope="module")
def opt_outs(all_champions) -> pd.DataFrame:
    return pd.read_parquet(all_champions.snapshot_dir / "opt_outs.parquet")


@pytest.fixture(scope="module")
def planned(server, keys):
    body = {"audience": {"all": True}, "send_date": SEND, "budget": 300.0, "capacity": {"phone": 40, "sms": 500},
            "exclusions": {"max_abuse_score": 0.5, "credit_max_pd": 0.1}, "holdout_share": 0.2}
    r = post(server, keys["campaign"], body)
    assert r.status_code == 201, r.text
    plan = r.json()
    return body, plan, all_assignments(server, keys["campaign"], plan["plan_id"])


def test_budget_and_capacities_are_never_exceeded(planned):
    body, plan, rows = planned
    assert plan["planned_users"] == len(rows) > 0
    assert plan["optimiser"]["spend_planned"] <= body["budget"] + 1e-6
    assert plan["expected"]["spend"] <= body["budget"] + 1e-6
    contacted = rows[~rows.holdout]
    per_channel = contacted.channel.value_counts()
    assert per_channel.get("phone", 0) <= 40 and per_channel.get("sms", 0) <= 500
    assert plan["users_per_channel"] == per_channel.to_dict()
    assert plan["optimiser"]["bound"] >= plan["optimiser"]["value"] - 1e-9
    assert plan["value_at_half_budget"] <= plan["optimiser"]["value"] + 1e-9 <= plan["value_at_twice_budget"] + 2e-9
    assert plan["models"]["response"]["version"] and len(plan["snapshot"]["sha256"]) == 64


def test_excluded_users_are_never_planned(planned, opt_outs, server, keys):
    _, plan, rows = planned
    assert plan["excluded"]["abuse_score"] > 0 and plan["excluded"]["opted_out"] > 0
    out = set(zip(opt_outs.user_id, opt_outs.channel))
    assert not any((u, c) in out for u, c in zip(rows.user_id, rows.channel))
    abuse = httpx.post(server.url + "/v1/abuse/score", json={"user_ids": rows.user_id.tolist()[:5000], "reasons": 0},
                       headers={"Authorization": f"Bearer {keys['campaign']}"}, timeout=60).json()["results"]
    assert max(x["score"] for x in abuse) <= 0.5
    credit_arms = rows[rows.arm.str.startswith("interest_free/")]
    if len(credit_arms):
        pd_ = httpx.post(server.url + "/v1/credit/score", json={"user_ids": credit_arms.user_id.tolist()[:5000],
                                                                 "reasons": 0},
                         headers={"Authorization": f"Bearer {keys['risk']}"}, timeout=60).json()["results"]
        assert max(x["score"] for x in pd_) <= 0.1


def test_holdout_is_random_and_never_contacted(planned, snapshot):
    _, plan, rows = planned
    held = rows[rows.holdout]
    assert plan["holdout_users"] == len(held) and plan["contacted_users"] == len(rows) - len(held)
    assert 0.15 < len(held) / len(rows) < 0.25
    assert sum(plan["users_per_arm"].values()) == plan["contacted_users"]  # counts are of the contacted only
    # Balanced on features: standardised mean differences between holdout and contacted are small.
    feats = snapshot.loc[rows.user_id, ["days_since_last_active", "tenure_days", "fund_amt_90", "active_days_30"]]
    on = rows.holdout.to_numpy()
    smd = (feats[on].mean() - feats[~on].mean()) / feats.std()
    assert (smd.abs() < 0.15).all(), smd


def test_contact_caps_count_issued_plans_and_release_on_cancel(server, keys):
    audience = {"segments": ["active/V2", "active/V3", "active/V4"]}
    base = {"audience": audience, "send_date": SEND, "budget": 50.0, "arms": [{"arm": "coupon/sms/evening"}],
            "contact_policy": {"max_per_channel": {"sms": 1}}, "holdout_share": 0.0}
    first = post(server, keys["campaign"], base).json()
    first_rows = all_assignments(server, keys["campaign"], first["plan_id"])
    assert len(first_rows) > 0
    second = post(server, keys["campaign"], base).json()
    second_rows = all_assignments(server, keys["campaign"], second["plan_id"])
    assert not set(first_rows.user_id) & set(second_rows.user_id)  # capped at one SMS a month
    assert second["excluded"]["contact_cap"] >= len(first_rows)
    for plan in (first, second):
        r = httpx.delete(server.url + f"/v1/campaigns/{plan['plan_id']}",
                         headers={"Authorization": f"Bearer {keys['campaign']}"})
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
    again = all_assignments(server, keys["campaign"], post(server, keys["campaign"], base).json()["plan_id"])
    assert set(again.user_id) & set(first_rows.user_id)  # the caps were released


def test_unservable_plan_is_200_with_reasons(server, keys):
    tiny = post(server, keys["campaign"], {"audience": {"all": True}, "send_date": SEND, "budget": 0.0001,
                                           "arms": [{"arm": "coupon/phone/noon"}]})
    assert tiny.status_code == 201, tiny.text
    assert tiny.json()["planned_users"] == 0 and "budget" in " ".join(tiny.json()["reasons"])
    capped = post(server, keys["campaign"], {"audience": {"all": True}, "send_date": SEND, "budget": 100.0,
                                             "arms": [{"arm": "coupon/sms/noon"}],
                                             "contact_policy": {"max_per_channel": {"sms": 0}}})
    assert capped.status_code == 201 and capped.json()["planned_users"] == 0
    assert capped.json()["reasons"] and capped.json()["excluded"]["contact_cap"] > 0


@pytest.mark.parametrize("body, field", [
    ({"audience": {"all": True}, "send_date": SEND}, "budget"),
    ({"audience": {"all": True}, "send_date": SEND, "budget": -1}, "budget"),
    ({"audience": {"all": True}, "send_date": "soon", "budget": 1}, "send_date"),
    ({"audience": {"segments": ["nowhere/V9"]}, "send_date": SEND, "budget": 1}, "segments"),
    ({"audience": {"all": True}, "send_date": SEND, "budget": 1, "arms": [{"arm": "gold/sms/noon"}]}, "arms"),
    ({"audience": {"all": True}, "send_date": SEND, "budget": 1, "capacity": {"fax": 3}}, "capacity"),
    ({"audience": {"all": True}, "send_date": SEND, "budget": 1, "holdout_share": 0.9}, "holdout_share"),
    ({"audience": {"all": True}, "send_date": SEND, "budget": 1, "surprise": 1}, "surprise"),
    ({"audience": {"all": True}, "send_date": SEND, "budget": 1, "holdout_seed": -1}, "holdout_seed"),
])
def test_bad_bodies_are_400_naming_the_field(server, keys, body, field):
    r = post(server, keys["campaign"], body)
    assert r.status_code == 400, r.text
    assert any(field in map(str, d["loc"]) for d in r.json()["detail"])
    for value in ("nowhere/V9", "gold", "fax"):
        assert value not in r.text


def test_a_boolean_user_id_is_named_as_the_field_not_its_type(server, keys):
    r = post(server, keys["campaign"], {"audience": {"user_ids": [True]}, "send_date": SEND, "budget": 1})
    assert r.status_code == 400 and r.json()["field"] == "user_ids", r.text


def test_scopes_and_idempotency(server, keys):
    body = {"audience": {"segments": ["silent_7_21/V3"]}, "send_date": SEND, "budget": 20.0, "client_key": "wk-49"}
    assert post(server, keys["risk"], body).status_code == 403
    first, second = post(server, keys["campaign"], body), post(server, keys["campaign"], body)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["plan_id"] == second.json()["plan_id"]
    page = get(server, keys["campaign"], f"/v1/campaigns/{first.json()['plan_id']}/assignments", limit=3).json()
    assert len(page["assignments"]) == min(3, page["total"])
    csv = get(server, keys["campaign"], f"/v1/campaigns/{first.json()['plan_id']}/assignments", format="csv")
    assert len(pd.read_csv(io.StringIO(csv.text))) == page["total"]


def test_plans_survive_a_restart(server, keys, planned, all_champions, broken_home, tmp_path):
    _, plan, rows = planned
    s = start_server(all_champions, broken_home("campaigns"), tmp_path / "serve.log")
    try:
        again = get(s, keys["campaign"], f"/v1/campaigns/{plan['plan_id']}")
        assert again.status_code == 200 and again.json()["planned_users"] == plan["planned_users"]
        assert all_assignments(s, keys["campaign"], plan["plan_id"]).equals(rows)
    finally:
        stop_server(s)


def test_audit_and_docs_list_the_routes(server, keys, planned, all_champions):
    lines = [json.loads(x) for x in all_champions.audit_log.read_text().splitlines()]
    plans = [x for x in lines if x["endpoint"] == "/v1/campaigns/plan" and x["status"] == 201]
    assert plans and plans[-1]["models"]["response"] and "user_hmacs" in plans[-1]
    paths = httpx.get(server.url + "/docs.json").json()["paths"]
    assert {"/v1/campaigns/plan", "/v1/campaigns/{plan_id}/assignments"} <= set(paths)
    assert paths["/v1/campaigns/plan"]["post"]["security"] == [{"bearer": ["campaign"]}]
