"""POST /v1/lookalike over HTTP: named and id seeds, guards, filters and the self-check."""

from __future__ import annotations

import json

import httpx
import pandas as pd
import pytest


def call(server, key, body):
    return httpx.post(server.url + "/v1/lookalike", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=120)


@pytest.fixture(scope="module")
def frame(all_champions):
    return pd.read_parquet(all_champions.snapshot_dir / "features.parquet")


def test_named_seed_expands_with_a_self_check(server, keys):
    r = call(server, keys["campaign"], {"seed_name": "top_value_20pct", "k": 500})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["results"]) == 500 and body["results"][0]["rank"] == 1
    check = body["self_check"]
    print("self-check:", check)
    assert check["recall"] > 3 * check["random_recall"]
    assert body["distinguishing_features"][0]["std_diff"] > 0.5


def test_seed_ids_filters_and_exclusion(server, keys, frame):
    seeds = frame[frame.city_tier == 2].index[:200].tolist()
    r = call(server, keys["campaign"], {"seed_user_ids": seeds, "k": 300, "city_tiers": [1, 3], "age_min": 30,
                                        "age_max": 50, "max_abuse_score": 0.2})
    assert r.status_code == 200, r.text
    ids = [x["user_id"] for x in r.json()["results"]]
    chosen = frame.loc[ids]
    assert chosen.city_tier.isin([1, 3]).all() and chosen.age.between(30, 50).all()
    assert not set(ids) & set(seeds)
    kept = call(server, keys["campaign"], {"seed_user_ids": seeds, "k": 300, "exclude_seeds": False})
    assert set(x["user_id"] for x in kept.json()["results"]) & set(seeds)


def test_audit_records_the_seed_as_pseudonyms(server, keys, frame, all_champions):
    from service.audit import pseudonym

    seeds = frame.index[:150].tolist()
    assert call(server, keys["campaign"], {"seed_user_ids": seeds[::-1] + [999], "k": 100}).status_code == 200
    record = json.loads(all_champions.audit_log.read_text().splitlines()[-1])
    assert record["endpoint"] == "/v1/lookalike" and record["seed_size"] == 150
    assert record["user_hmacs"] == [pseudonym(b"test-audit-secret", u) for u in sorted(seeds)]


def test_credit_offer_leaves_protected_attributes_out(server, keys, frame):
    """A seed of young users draws young lookalikes while age counts; a credit offer may not lean on age."""
    young = frame[frame.age < 25].sample(300, random_state=0).index.tolist()
    mean_age = {}
    for offer in (False, True):
        r = call(server, keys["campaign"], {"seed_user_ids": young, "k": 1000, "credit_offer": offer})
        assert r.status_code == 200 and r.json()["protected_attributes_used"] is (not offer)
        mean_age[offer] = frame.loc[[x["user_id"] for x in r.json()["results"]], "age"].mean()
    print(f"mean age of lookalikes of a young seed: {mean_age[False]:.1f}, as a credit offer {mean_age[True]:.1f}")
    assert mean_age[True] > mean_age[False] + 2


@pytest.mark.parametrize("body,status,field", [
    ({"seed_name": "no_such_seed"}, 404, "seed_name"),
    ({"seed_user_ids": [10000005, 10000006]}, 400, "seed_user_ids"),
    ({"seed_user_ids": []}, 400, "seed_user_ids"),
    ({}, 400, "exactly one"),
    ({"seed_name": "top_value_20pct", "k": 10, "share": 0.1}, 400, "k or share"),
    ({"seed_name": "top_value_20pct", "city_tiers": [9]}, 400, "city_tiers"),
])
def test_bad_seeds_are_4xx_naming_the_problem(server, keys, body, status, field):
    r = call(server, keys["campaign"], body)
    assert r.status_code == status
    assert field in r.text


def test_risk_key_may_not_build_audiences(server, keys):
    assert call(server, keys["risk"], {"seed_name": "top_value_20pct"}).status_code == 403
