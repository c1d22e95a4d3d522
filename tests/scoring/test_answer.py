"""The answer's renderings: one user alone answers exactly as in a batch; JSON text is the dicts
as orjson writes them."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from scoring import answer_json
from scoring.answer import Layout, rows
from scoring.answer_json import score_json
from scoring.scorer import round6, round_to
from scoring.thresholds import DICT_ROWS


def layout_of(scorer, endpoint: str, version: str) -> Layout:
    return Layout.of(scorer, {"name": endpoint, "version": version, "run_id": "run"}, ring_size=endpoint == "abuse")


@pytest.mark.parametrize("name", ["churn", "abuse"])
def test_single_user_path_matches_the_batch_path(trained, name):
    ds, result = trained[name]
    X = result.scorer.spec.to_matrix(ds.X_test.head(400))
    X[::5, ::4] = np.nan  # unknown values, segment inputs and categoricals among them
    model = layout_of(result.scorer, name, "1")
    ids = ds.X_test.head(400).index.tolist()
    whole = rows(model, X, 3, user_ids=ids)  # 400 rows: the sparse product
    for start in range(0, len(X), 20):  # batches of 20: LightGBM's predict, the dense gather, argmax passes
        batch = rows(model, X[start:start + 20], 3, user_ids=ids[start:start + 20])
        alone = [rows(model, X[i:i + 1], 3, user_ids=[ids[i]])[0] for i in range(start, start + len(batch))]
        assert orjson.dumps(alone) == orjson.dumps(batch)  # as sent: key order and the sign of zero count
        assert orjson.dumps(whole[start:start + 20]) == orjson.dumps(batch)
    for user_ids in (None, [None], [7]):  # without ids, a record without one, a record with one
        one, two = rows(model, X[:1], 5, user_ids=user_ids), rows(model, X[:2], 5, user_ids=user_ids and user_ids * 2)
        assert orjson.dumps(one[0]) == orjson.dumps(two[0])
    assert len(rows(model, X[:1], 5)[0]["reasons"]) == 5


def test_plain_python_rounding_is_numpys():
    values = np.random.default_rng(0).normal(scale=3, size=1_000_000)
    values[:6] = [0.5e-6, 1.5e-6, 2.5e-6, -0.5e-6, -0.3e-6, -0.0]  # halves go to even; small negatives to -0.0
    assert orjson.dumps([round6(v) for v in values.tolist()]) == orjson.dumps(round_to(values, 6).tolist())
    assert np.array_equal(round_to(values, 6), np.round(values, 6))


@pytest.fixture(scope="module")
def champions(all_champions) -> dict[str, tuple[Layout, np.ndarray, list[int]]]:
    """The four champions as the service holds them, over 400 users of the session's snapshot."""
    import mlflow
    import pandas as pd

    frame = pd.read_parquet(all_champions.snapshot_dir / "features.parquet").sample(400, random_state=3)
    out = {}
    for endpoint, registry in (("churn", "churn"), ("abuse", "promo_abuse"), ("response", "marketing_response"),
                               ("credit", "credit_features")):
        scorer = mlflow.pyfunc.load_model(f"models:/{registry}@champion").unwrap_python_model().scorer
        X = scorer.spec.to_matrix(frame.reindex(columns=scorer.spec.names))
        for j in range(3):  # every column unknown in some rows: categoricals and the ring size among them
            X[j::7, j::3] = np.nan
        out[endpoint] = (layout_of(scorer, endpoint, "3"), X, frame.index.tolist())
        if endpoint == "response":  # a caller's arms, the best chosen by net value
            narrowed = scorer.narrowed(scorer.arms[::5], value=40.0, incentive_cost={"coupon": 1.0})
            out["response_net"] = (out[endpoint][0].for_scorer(narrowed), X, frame.index.tolist())
    return out


@pytest.mark.parametrize("endpoint", ["churn", "abuse", "response", "response_net", "credit"])
def test_an_answer_written_in_pieces_is_the_same_text(champions, endpoint, monkeypatch):
    model, X, ids = champions[endpoint]
    whole = score_json(model, X, 3, user_ids=ids)
    monkeypatch.setattr(answer_json, "WRITE_ROWS", 7)  # pieces that do not divide the batch
    assert score_json(model, X, 3, user_ids=ids) == whole == b",".join(map(orjson.dumps, rows(model, X, 3, user_ids=ids)))
    assert score_json(model, X, 3, sep=b"\n").split(b"\n") == list(map(orjson.dumps, rows(model, X, 3)))


@pytest.mark.parametrize("endpoint", ["churn", "abuse", "response", "response_net", "credit"])
@pytest.mark.parametrize("reasons", [0, 3, 10])
def test_json_rows_are_the_dicts_as_orjson_writes_them(champions, endpoint, reasons):
    model, X, ids = champions[endpoint]
    assert len(X) > DICT_ROWS  # the column-wise writer, not the dicts
    for user_ids in (ids, None, [None if i % 5 == 0 else u for i, u in enumerate(ids)]):
        dicts = rows(model, X, reasons, user_ids=user_ids)
        assert score_json(model, X, reasons, user_ids=user_ids) == b",".join(map(orjson.dumps, dicts))
        assert score_json(model, X, reasons, user_ids=user_ids, sep=b"\n").split(b"\n") == list(map(orjson.dumps, dicts))
    if endpoint == "abuse":
        assert any(d["ring_size"] is None for d in dicts) and any(d["ring_size"] for d in dicts)
    if endpoint == "credit":
        assert all(d["points"] for d in dicts)
    if endpoint.startswith("response"):
        arms = model.scorer.arms
        assert all(list(d["arms"]) == list(arms) for d in dicts)
        assert all(d["best_arm"] is None or d["best_arm"] in arms for d in dicts)
        if endpoint == "response_net":
            assert all(set(v) == {"uplift", "p_convert", "net_value"} for d in dicts for v in d["arms"].values())
    if reasons:
        given = [r for d in dicts for r in d["reasons"]]
        assert any(r["value"] is None for r in given)  # unknown values go out as null
        categorical = set(model.scorer.spec.categorical)
        assert all(isinstance(r["value"], str) for r in given if r["feature"] in categorical and r["value"] is not None)
        if reasons == 10 and endpoint != "abuse":  # abuse's top reasons hold no category on this world
            assert any(r["feature"] in categorical and isinstance(r["value"], str) for r in given)


@pytest.mark.parametrize("endpoint", ["churn", "abuse", "response", "response_net", "credit"])
def test_a_user_alone_answers_as_in_a_batch_on_every_model(champions, endpoint):
    model, X, ids = champions[endpoint]
    batch = rows(model, X[:DICT_ROWS + 8], 3, user_ids=ids[:DICT_ROWS + 8])
    alone = [rows(model, X[i:i + 1], 3, user_ids=[ids[i]])[0] for i in range(DICT_ROWS + 8)]
    assert orjson.dumps(alone) == orjson.dumps(batch)
