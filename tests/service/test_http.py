"""The service over real HTTP: scores match the registry model, errors are 4xx naming the field, keys hold."""

from __future__ import annotations

import json

import bentoml
import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest

from service.audit import pseudonym
from scoring.thresholds import INLINE_ROWS

AUDIT_SECRET = b"test-audit-secret"  # what tests/service/conftest.py gives the server


def post(server, path: str, body, key: str | None, raw: bool = False) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if raw:
        return httpx.post(server.url + path, content=body, headers={**headers, "content-type": "application/json"}, timeout=60)
    return httpx.post(server.url + path, json=body, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def some_ids(snapshot) -> list[int]:
    """Users every model scores: inside churn's population (active in the last 30 days) and credit's (borrowers)."""
    scored = snapshot[(snapshot.active_days_30 >= 1) & (snapshot.loan_apps_all >= 1)]
    return scored.sample(300, random_state=1).index.tolist()


@pytest.mark.parametrize("endpoint,registry", [("churn", "churn"), ("abuse", "promo_abuse"),
                                               ("response", "marketing_response"), ("credit", "credit_features")])
def test_scores_equal_the_registry_model_in_process(server, keys, snapshot, some_ids, endpoint, registry):
    key = keys["risk"] if endpoint == "credit" else keys["campaign"]
    r = post(server, f"/v1/{endpoint}/score", {"user_ids": some_ids}, key)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["user_id"] for x in results] == some_ids
    model = mlflow.pyfunc.load_model(f"models:/{registry}@champion")
    spec = model.unwrap_python_model().scorer.spec
    frame = snapshot.loc[some_ids].reindex(columns=spec.names)
    expected = model.predict(spec.frame(frame))
    got = np.array([x["score"] for x in results])
    assert np.max(np.abs(got - expected["score"].to_numpy())) <= 1e-6
    assert [x["band"] for x in results] == expected["band"].tolist()
    first = results[0]
    assert first["model"]["name"] == registry and first["model"]["version"] and first["model"]["run_id"]
    assert len(first["reasons"]) == 3 and {"feature", "value", "contribution"} == set(first["reasons"][0])
    if endpoint == "response":
        assert abs(first["p_treated"] - first["p_control"] - first["score"]) < 2e-6
        assert [x["best_arm"] for x in results] == expected["best_arm"].tolist()
        arm = next(iter(first["arms"]))
        assert abs(first["arms"][arm]["uplift"] - expected[f"uplift_{arm}"].iloc[0]) < 1e-6
    if endpoint == "credit":
        assert "score_points" in first and first["points"]
    if endpoint == "abuse":
        assert first["ring_size"] >= 1


def test_sync_http_client_and_records_path_agree(server, keys, snapshot, some_ids):
    with bentoml.SyncHTTPClient(server.url, token=keys["campaign"], server_ready_timeout=60) as client:
        by_id = client.churn(user_ids=some_ids[:20])["results"]
        records = [
            {k: (None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)) for k, v in row.items() if k != "gender"}
            | {"user_id": uid}
            for uid, row in snapshot.loc[some_ids[:20]].iterrows()
        ]
        by_record = client.churn(records=records)["results"]
    assert [a["score"] for a in by_id] == [b["score"] for b in by_record]
    assert [a["user_id"] for a in by_id] == [b["user_id"] for b in by_record]


def test_inline_and_threaded_batches_agree(server, keys, some_ids):
    """A few users are scored on the event loop, many in a thread: the answers must not differ."""
    large = post(server, "/v1/churn/score", {"user_ids": some_ids}, keys["campaign"]).json()["results"]
    small = post(server, "/v1/churn/score", {"user_ids": some_ids[:5]}, keys["campaign"]).json()["results"]
    assert len(some_ids) > INLINE_ROWS >= 5
    assert small == large[:5]


@pytest.mark.parametrize("endpoint", ["churn", "abuse"])
def test_a_user_alone_gets_the_answer_of_a_batch(server, keys, some_ids, endpoint):
    """One user takes the single-user path (fast LightGBM call, plain-Python formatting)."""
    batch = post(server, f"/v1/{endpoint}/score", {"user_ids": some_ids[:20]}, keys["campaign"]).json()["results"]
    alone = [post(server, f"/v1/{endpoint}/score", {"user_ids": [u]}, keys["campaign"]).json()["results"][0]
             for u in some_ids[:20]]
    assert alone == batch


def test_records_may_leave_the_user_id_out(server, keys, some_ids):
    r = post(server, "/v1/churn/score", {"records": [{"user_id": some_ids[0], "age": 30}, {"age": 40}]}, keys["campaign"])
    assert r.status_code == 200, r.text
    assert [x["user_id"] for x in r.json()["results"]] == [some_ids[0], None]


def test_unknown_ids_are_reported_per_item(server, keys, some_ids):
    r = post(server, "/v1/churn/score", {"user_ids": [some_ids[0], 999, some_ids[1]]}, keys["campaign"])
    assert r.status_code == 200
    res = r.json()["results"]
    assert "score" in res[0] and "score" in res[2]
    assert res[1]["user_id"] == 999 and "unknown user_id" in res[1]["error"]
    for unknown in ([998, 999], [999]):
        r = post(server, "/v1/churn/score", {"user_ids": unknown}, keys["campaign"])
        assert r.status_code == 200 and [x["user_id"] for x in r.json()["results"]] == unknown
        assert all("unknown user_id" in x["error"] for x in r.json()["results"])


@pytest.mark.parametrize("endpoint", ["churn", "abuse"])
def test_unknown_ids_in_a_large_batch_sit_where_they_were_asked(server, keys, some_ids, endpoint):
    """A large batch's rows are written as JSON text, one per line, and the errors slotted in between."""
    known = post(server, f"/v1/{endpoint}/score", {"user_ids": some_ids}, keys["campaign"]).json()["results"]
    ids = [997, *some_ids[:150], 998, *some_ids[150:], 999]
    results = post(server, f"/v1/{endpoint}/score", {"user_ids": ids}, keys["campaign"]).json()["results"]
    assert [r["user_id"] for r in results] == ids
    assert [r for r in results if "error" not in r] == known
    assert [i for i, r in enumerate(results) if "unknown user_id" in r.get("error", "")] == [0, 151, len(ids) - 1]


@pytest.mark.parametrize("body,field", [
    ({"user_ids": list(range(1, 10_002))}, "user_ids"),
    ({"records": [{"age": 5}]}, "age"),
    ({"records": [{"acquisition_channel": "telepathy"}]}, "acquisition_channel"),
    ({"records": [{"active_days_7": -1}]}, "active_days_7"),
    ({"records": [{"favourite_colour": "blue"}]}, "favourite_colour"),
    ({"user_ids": [1], "records": [{}]}, "exactly one"),
    ({}, "exactly one"),
    ({"user_ids": [""]}, "user_ids"),  # ids are whole numbers or text, but never empty text,
    ({"user_ids": [1.5]}, "user_ids"),  # fractions
    ({"user_ids": [True]}, "user_ids"),  # or booleans
])
def test_bad_input_is_a_400_naming_the_field(server, keys, body, field):
    r = post(server, "/v1/churn/score", body, keys["campaign"])
    assert r.status_code == 400
    assert field in r.text


def test_nan_and_malformed_json_are_400(server, keys):
    r = post(server, "/v1/churn/score", '{"records": [{"age": NaN}]}', keys["campaign"], raw=True)
    assert r.status_code == 400 and "age" in r.text
    r = post(server, "/v1/churn/score", '{"user_ids": [1,', keys["campaign"], raw=True)
    assert r.status_code == 400


@pytest.mark.parametrize("extra,field", [
    ({"arms": ["free_lunch/push/morning"]}, "arms"),
    ({"arms": ["coupon/sms/evening", "coupon/sms/evening"]}, "arms"),
    ({"arms": []}, "arms"),
    ({"value_per_conversion": -1}, "value_per_conversion"),
    ({"incentive_cost": {"coupon": 1.0}}, "value_per_conversion"),
    ({"value_per_conversion": 30, "contact_cost": {"phone": -2}}, "contact_cost"),
    ({"incentive": "red_packet"}, "incentive"),  # the single-offer fields are gone
])
def test_unknown_arms_and_bad_costs_are_400_naming_the_field(server, keys, some_ids, extra, field):
    r = post(server, "/v1/response/score", {"user_ids": some_ids[:2], **extra}, keys["campaign"])
    assert r.status_code == 400 and field in r.text


def test_response_gives_every_arm_and_the_best(server, keys, some_ids):
    from scoring.arms import ARMS

    r = post(server, "/v1/response/score", {"user_ids": some_ids[:30]}, keys["campaign"])
    assert r.status_code == 200, r.text
    for x in r.json()["results"]:
        assert list(x["arms"]) == [a.id for a in ARMS]
        uplift = {a: v["uplift"] for a, v in x["arms"].items()}
        best = max(uplift, key=uplift.get)
        assert x["best_arm"] == (best if uplift[best] > 0 else None)
        assert x["score"] == pytest.approx(uplift[best], abs=1e-6)
        assert all(abs(v["p_convert"] - x["p_control"] - v["uplift"]) < 2e-6 for v in x["arms"].values())


def test_response_with_named_arms_and_costs_chooses_by_net_value(server, keys, some_ids):
    arms = ["red_packet/phone/evening", "none/push/morning", "coupon/sms/noon"]
    body = {"user_ids": some_ids[:30], "arms": arms, "value_per_conversion": 60.0,
            "incentive_cost": {"red_packet": 2.0}, "contact_cost": {"phone": 5.0}}
    r = post(server, "/v1/response/score", body, keys["campaign"])
    assert r.status_code == 200, r.text
    cost = {"red_packet/phone/evening": (5.0, 2.0), "none/push/morning": (0.005, 0.0), "coupon/sms/noon": (0.05, 5.0)}
    for x in r.json()["results"]:
        assert list(x["arms"]) == arms
        for arm, v in x["arms"].items():
            contact, incentive = cost[arm]
            assert v["net_value"] == pytest.approx(v["uplift"] * 60 - contact - v["p_convert"] * incentive, abs=1e-4)
        net = {a: v["net_value"] for a, v in x["arms"].items()}
        best = max(net, key=net.get)
        assert x["best_arm"] == (best if net[best] > 0 else None)
        alone = post(server, "/v1/response/score", {**body, "user_ids": [x["user_id"]]}, keys["campaign"])
        assert alone.json()["results"][0] == x


def test_keys_and_scopes(server, keys, some_ids):
    body = {"user_ids": some_ids[:3]}
    assert post(server, "/v1/churn/score", body, None).status_code == 401
    assert post(server, "/v1/churn/score", body, "ops_deadbeef_notakey").status_code == 401
    key = keys["campaign"]
    assert post(server, "/v1/churn/score", body, key[:-1] + ("y" if key.endswith("x") else "x")).status_code == 401
    assert post(server, "/v1/credit/score", body, keys["campaign"]).status_code == 403
    assert post(server, "/v1/churn/score", body, keys["risk"]).status_code == 403
    assert post(server, "/v1/abuse/score", body, keys["risk"]).status_code == 200
    assert post(server, "/v1/credit/score", body, keys["risk"]).status_code == 200
    for path in ("/livez", "/readyz", "/metrics"):
        assert httpx.get(server.url + path).status_code == 200


def test_keys_are_added_and_revoked_without_a_restart(server, keys, some_ids, all_champions):
    import time

    from service.keys import KeyStore

    store = KeyStore(all_champions.keys_file)
    late = store.add("late-system", ["campaign"])

    def status_within(expected: int, seconds: float = 5) -> int:
        deadline = time.monotonic() + seconds
        while True:
            status = post(server, "/v1/churn/score", {"user_ids": some_ids[:1]}, late).status_code
            if status == expected or time.monotonic() > deadline:
                return status
            time.sleep(0.2)

    assert status_within(200) == 200
    assert store.revoke(late.split("_")[1])
    assert status_within(401) == 401


def test_audit_pseudonyms_of_a_large_batch_with_unknown_ids(server, keys, some_ids, all_champions):
    """Snapshot users' pseudonyms come from a table built at start-up, unknown ids are hashed per
    call: the record must list them all, in request order, as the same keyed hash."""
    ids = some_ids[:100] + [999] + some_ids[100:150]
    assert post(server, "/v1/abuse/score", {"user_ids": ids}, keys["campaign"]).status_code == 200
    record = [json.loads(x) for x in all_champions.audit_log.read_text().splitlines()][-1]
    assert record["n_users"] == len(ids) and record["unknown"] == 1
    assert record["user_hmacs"] == [pseudonym(AUDIT_SECRET, u) for u in ids]
    for alone in ([some_ids[7]], [999]):  # one id takes its own lookup
        assert post(server, "/v1/abuse/score", {"user_ids": alone}, keys["campaign"]).status_code == 200
        record = [json.loads(x) for x in all_champions.audit_log.read_text().splitlines()][-1]
        assert record["user_hmacs"] == [pseudonym(AUDIT_SECRET, alone[0])] and record["unknown"] == (alone == [999])


def test_each_call_has_its_own_request_id_in_the_audit_log(server, keys, some_ids, all_champions):
    ids = [post(server, "/v1/churn/score", {"user_ids": some_ids[:1]}, keys["campaign"]).headers["x-request-id"]
           for _ in range(20)]
    assert len(set(ids)) == 20 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    logged = {json.loads(x)["request_id"] for x in all_champions.audit_log.read_text().splitlines()}
    assert set(ids) <= logged


def test_models_endpoint_lists_the_champions(server, keys):
    r = httpx.get(server.url + "/v1/models", headers={"Authorization": f"Bearer {keys['risk']}"})
    assert r.status_code == 200
    models = {m["name"]: m for m in r.json()["models"]}
    assert set(models) == {"churn", "promo_abuse", "marketing_response", "credit_features", "disbursement_forecast"}
    assert all(m["version"] and m["run_id"] and m["trained_at"] for m in models.values())
    assert "oot_auc" in models["churn"]["metrics"]


def test_audit_log_has_a_line_per_call_and_no_personal_data(server, keys, some_ids, all_champions):
    post(server, "/v1/churn/score", {"user_ids": some_ids[:5]}, keys["campaign"])
    post(server, "/v1/credit/score", {"user_ids": some_ids[:5]}, keys["campaign"])
    lines = [json.loads(x) for x in all_champions.audit_log.read_text().splitlines()]
    scored = [x for x in lines if x["endpoint"] == "/v1/churn/score" and x["status"] == 200 and x["n_users"] == 5]
    assert scored and scored[-1]["models"]["churn"] and len(scored[-1]["user_hmacs"]) == 5
    assert scored[-1]["user_hmacs"] == [pseudonym(AUDIT_SECRET, u) for u in some_ids[:5]]
    assert any(x["status"] == 403 and x["endpoint"] == "/v1/credit/score" for x in lines)
    text = all_champions.audit_log.read_text() + server.log_text()
    for uid in some_ids[:5]:
        assert str(uid) not in text
    for key in keys.values():
        assert key not in text and key.split("_", 2)[2] not in text


def test_a_body_over_the_limit_is_413_before_it_is_read(server, keys, all_champions):
    """Only the head is sent, declaring one byte over the limit: the answer comes without the body."""
    import socket

    limit = all_champions.max_body_mb * 1024 * 1024
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(f"POST /v1/churn/score HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {keys['campaign']}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {limit + 1}\r\n\r\n".encode())
        answer = b""
        while chunk := conn.recv(4096):  # the server closes the connection after a refusal
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413") and b"above the limit" in answer
    record = json.loads(all_champions.audit_log.read_text().splitlines()[-1])
    assert record["status"] == 413 and record["endpoint"] == "/v1/churn/score"
    assert post(server, "/v1/churn/score", {"user_ids": [1]}, keys["campaign"]).status_code == 200  # others go on


def test_a_chunked_body_over_the_limit_is_413_not_an_error(server, keys, all_champions):
    """Without a declared length the body is counted as it comes: past the limit the answer is 413."""
    import socket

    limit = all_champions.max_body_mb * 1024 * 1024
    chunk = b"x" * (1024 * 1024)
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(f"POST /v1/churn/score HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {keys['campaign']}\r\n"
                     "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        try:
            for _ in range(limit // len(chunk) + 2):
                conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while the rest was on its way
        answer = b""
        try:
            while part := conn.recv(65536):
                answer += part
        except (ConnectionResetError, TimeoutError):
            pass
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    record = json.loads(all_champions.audit_log.read_text().splitlines()[-1])
    assert record["status"] == 413


def test_no_id_or_feature_value_reaches_the_server_log(server, keys):
    """Hostile bodies whose errors carry their input (pydantic's input_value, json's fragment): the log
    names the field and the kind of error, never the value."""
    marks = ["31415926535", "27182.818284", "16180339887", "14142135623"]
    bodies = [{"user_ids": [int(marks[0])], "records": [{"credit_line": float(marks[1])}]},
              {"records": [{"age": float(marks[1])}]},
              {"user_ids": int(marks[2])},
              {"records": [{marks[3]: 0.5}]}]  # an unknown field named by an id
    for body in bodies:
        assert post(server, "/v1/churn/score", body, keys["campaign"]).status_code == 400
    assert post(server, "/v1/churn/score", b'{"user_ids": [' + marks[2].encode(), keys["campaign"], raw=True).status_code == 400
    log = server.log_text()
    assert "validation" in log.lower() or "ValidationError" in log  # the failures are logged ...
    for mark in marks:  # ... without what the caller sent
        assert mark not in log


@pytest.mark.parametrize("kind", ["multipart/form-data", "multipart/form-data; boundary=x",
                                  "Multipart/Form-Data; boundary=x", "application/x-www-form-urlencoded"])
def test_form_bodies_are_400_naming_the_content_type(server, keys, kind):
    """The API takes JSON. A body declared multipart with a boundary but not multipart was a 500 (found by
    fuzzing), and a URL-encoded JSON body a field named by the caller's data (an id in the log)."""
    r = httpx.post(server.url + "/v1/churn/score", content=b'{"user_ids": [1]}', timeout=30,
                   headers={"Authorization": f"Bearer {keys['campaign']}", "content-type": kind})
    assert r.status_code == 400 and "content-type" in r.text and "application/json" in r.text
