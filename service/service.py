"""The opscore BentoML service: scoring endpoints for the four champions, lookalike, models, readiness.

Models come from the BentoML store (`python -m service import-models` copies each MLflow
`@champion` there); the service verifies each one and the feature snapshot at start-up and
reports ready only when all of them load, match their checksums and score their input example.
"""

from __future__ import annotations

import gc
import logging
from pathlib import Path

import anyio
import bentoml
import numpy as np
import orjson
import pandas as pd
from bentoml.models import BentoModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.audit import PseudonymTable
from service.auth import protect
from service.config import INLINE_ROWS, SERVICE_CONFIG
from service.runtime import (SNAPSHOT_MODEL, NotReady, RequestError, ServedModel, Snapshot, load_lookalike,
                             load_served_model, lookalike_audience, score_json)
from service.schemas import LookalikeRequest, ResponseScoreRequest, ScoreRequest
from training.registry import MODEL_NAMES
from training.settings import get_settings

log = logging.getLogger("opscore.service")
settings = get_settings()

# Shared with the /v1/models app below, which is mounted beside the service in the same worker.
SERVED: dict[str, ServedModel] = {}


async def list_models(request: Request) -> JSONResponse:
    return JSONResponse({"models": [
        {**m.identity, "endpoint": f"/v1/{m.endpoint}/score", "trained_at": m.trained_at, "metrics": m.metrics}
        for m in SERVED.values()
    ]})


def _stored(name: str) -> BentoModel | None:
    """A reference to the newest stored version, or None so a missing model keeps readiness red
    instead of stopping the server from starting."""
    try:
        return BentoModel(bentoml.models.get(f"{name}:latest").tag)
    except bentoml.exceptions.NotFound:
        log.error("%s is not in the BentoML store: run `python -m service import-models`", name)
        return None


models_app = Starlette(routes=[Route("/models", list_models, methods=["GET"])])


@bentoml.service(name="opscore", **SERVICE_CONFIG)
@bentoml.asgi_app(models_app, path="/v1")
class Opscore:
    # Declared at class scope so that `bentoml build` carries them into the Bento.
    churn_ref = _stored(MODEL_NAMES["churn"])
    abuse_ref = _stored(MODEL_NAMES["abuse"])
    response_ref = _stored(MODEL_NAMES["response"])
    credit_ref = _stored(MODEL_NAMES["credit"])
    snapshot_ref = _stored(SNAPSHOT_MODEL)

    def __init__(self) -> None:
        self.problems: dict[str, str] = {}
        self.snapshot: Snapshot | None = None
        self.models: dict[str, ServedModel] = {}
        try:
            if self.snapshot_ref is None:
                raise NotReady(f"{SNAPSHOT_MODEL} is not in the BentoML store")
            self.snapshot = Snapshot.load(Path(self.snapshot_ref.path))
        except Exception as e:  # noqa: BLE001 - any failure must keep readiness red, not kill the worker
            self._fail("snapshot", e)
        for endpoint in MODEL_NAMES:
            if self.snapshot is None:
                self.problems[endpoint] = "not loaded: the feature snapshot is unavailable"
                continue
            try:
                bento_model = getattr(self, f"{endpoint}_ref")
                if bento_model is None:
                    raise NotReady(f"{MODEL_NAMES[endpoint]} is not in the BentoML store")
                self.models[endpoint] = load_served_model(endpoint, bento_model, self.snapshot)
            except Exception as e:  # noqa: BLE001
                self._fail(endpoint, e)
        self.lookalike_index = None
        self.abuse_scores = None
        self.pseudonyms: PseudonymTable | None = None
        if self.snapshot is not None:
            self.pseudonyms = PseudonymTable(settings.audit_secret.get_secret_value().encode(), self.snapshot.ids)
            try:
                self.lookalike_index = load_lookalike(Path(self.snapshot_ref.path) / "lookalike", self.snapshot)
            except Exception as e:  # noqa: BLE001
                self._fail("lookalike", e)
            if "abuse" in self.models:
                abuse = self.models["abuse"]
                self.abuse_scores = abuse.scorer.predict(abuse.matrix)
        SERVED.clear()
        SERVED.update(self.models)
        self.answer_tail = b'],"snapshot_as_of":' + orjson.dumps(self.snapshot.as_of if self.snapshot else None) + b"}"
        # Everything loaded so far lives as long as the worker. Freezing it keeps the collector's
        # full sweeps, which a 10,000-row answer's objects trigger several times, off those
        # million objects: at 10k rows that halved the median in-process formatting time.
        gc.freeze()
        if self.problems:
            log.error("NOT READY: %s", "; ".join(f"{k}: {v}" for k, v in self.problems.items()))
        else:
            log.info("ready: %s; snapshot as of %s (%d users)",
                     ", ".join(f"{m.registry_name} v{m.version}" for m in self.models.values()),
                     self.snapshot.as_of, len(self.snapshot.ids))

    def _fail(self, what: str, e: Exception) -> None:
        self.problems[what] = f"{type(e).__name__}: {e}"
        log.error("%s failed to load: %s", what, self.problems[what])

    def __is_ready__(self) -> bool:
        return not self.problems

    def _score(self, endpoint: str, ctx: bentoml.Context, user_ids, records, reasons: int,
               offer: dict | None = None) -> dict:
        model = self.models.get(endpoint)
        if model is None:
            ctx.response.status_code = 503
            return {"error": f"model {endpoint} is not available: {self.problems.get(endpoint, 'not loaded')}"}
        if user_ids is not None:
            id_list = list(user_ids)
            X, found, hmacs = self._snapshot_rows(model, id_list)
            audit_ids = {"user_hmacs": hmacs}
        else:
            frame = pd.DataFrame([r.model_dump() for r in records])
            id_list = [r.user_id for r in records]  # None where a record has none
            found = None
            audit_ids = {"user_ids": [u for u in id_list if u is not None]}
            X = model.scorer.spec.to_matrix(frame.reindex(columns=model.scorer.spec.names))
        if offer:
            X = _with_offer(model, X, offer)
        all_found = found is None
        scored_ids = id_list if all_found else [u for u, ok in zip(id_list, found) if ok]
        # Rows come as JSON text; with unknown ids among them, one per line to slot the errors in.
        results = score_json(model, X, reasons, settings.scoring_threads, scored_ids, sep=b"," if all_found else b"\n")
        if not all_found:
            scored = iter(results.split(b"\n"))
            unknown = f"unknown user_id: not in the feature snapshot as of {self.snapshot.as_of}"
            results = b",".join(next(scored) if ok else orjson.dumps({"user_id": uid, "error": unknown})
                                for uid, ok in zip(id_list, found))
        ctx.request.state.audit = {
            **audit_ids, "n_users": len(id_list), "models": {endpoint: model.version},
            "unknown": len(id_list) - len(scored_ids),
        }
        return Response(b'{"results":[' + results + self.answer_tail, media_type="application/json")

    def _snapshot_rows(self, model: ServedModel, user_ids: list[int]) -> tuple[np.ndarray, list[bool] | None,
                                                                                  orjson.Fragment]:
        """The model's rows of the known ids, which ids were found (None: all of them) and the
        pseudonyms of all of them for the audit record."""
        if len(user_ids) == 1:  # the commonest call: scalar lookups rather than arrays of one
            row = self.snapshot.row(user_ids[0])
            if row is not None:
                return model.matrix[row:row + 1], None, self.pseudonyms.at_row(row)
        ids = np.asarray(user_ids, dtype=np.int64)
        pos, found = self.snapshot.rows(ids)
        if found.all():
            return np.take(model.matrix, pos, axis=0), None, self.pseudonyms.at(pos)  # take: half the time of X[pos]
        return np.take(model.matrix, pos[found], axis=0), found.tolist(), self.pseudonyms.of(user_ids, pos, found)

    async def _score_async(self, endpoint: str, ctx: bentoml.Context, user_ids, records, reasons: int,
                           offer: dict | None = None) -> dict:
        """A handful of users is scored on the event loop: a thread hop would cost more than the
        scoring. A large batch goes to a worker thread so that it does not stall other requests."""
        size = len(user_ids if user_ids is not None else records)
        if size <= INLINE_ROWS:
            return self._score(endpoint, ctx, user_ids, records, reasons, offer)
        return await anyio.to_thread.run_sync(self._score, endpoint, ctx, user_ids, records, reasons, offer)

    @bentoml.api(route="/v1/churn/score", input_spec=ScoreRequest)
    async def churn(self, ctx: bentoml.Context, user_ids=None, records=None, reasons: int = 3) -> dict:
        """Probability that an active user goes silent in the next 30 days, with reasons and segment."""
        return await self._score_async("churn", ctx, user_ids, records, reasons)

    @bentoml.api(route="/v1/abuse/score", input_spec=ScoreRequest)
    async def abuse(self, ctx: bentoml.Context, user_ids=None, records=None, reasons: int = 3) -> dict:
        """Probability that an account is a coupon hunter, with the size of its device/invite ring."""
        return await self._score_async("abuse", ctx, user_ids, records, reasons)

    @bentoml.api(route="/v1/response/score", input_spec=ResponseScoreRequest)
    async def response(self, ctx: bentoml.Context, user_ids=None, records=None, reasons: int = 3,
                       incentive: str = "red_packet", channel: str = "push", send_hour: int = 10) -> dict:
        """Uplift of an incentive: P(convert | treated), P(convert | control) and their difference."""
        offer = {"incentive": incentive, "channel": channel, "send_hour": send_hour}
        return await self._score_async("response", ctx, user_ids, records, reasons, offer)

    @bentoml.api(route="/v1/credit/score", input_spec=ScoreRequest)
    async def credit(self, ctx: bentoml.Context, user_ids=None, records=None, reasons: int = 3) -> dict:
        """Behaviour scorecard: PD, score points, points per feature and the reasons that cost points."""
        return await self._score_async("credit", ctx, user_ids, records, reasons)

    @bentoml.api(route="/v1/lookalike", input_spec=LookalikeRequest)
    def lookalike(self, ctx: bentoml.Context, **req) -> dict:
        """Users who look like a seed audience, with the features that set the seed apart and a self-check."""
        if self.lookalike_index is None:
            ctx.response.status_code = 503
            return {"error": f"lookalike is not available: {self.problems.get('lookalike', 'not loaded')}"}
        try:
            body, seed_rows = lookalike_audience(
                self.lookalike_index, self.snapshot, Path(self.snapshot_ref.path) / "seeds", self.abuse_scores,
                settings.lookalike_min_seed, req)
        except RequestError as e:
            ctx.response.status_code = e.status
            return {"error": str(e), "field": e.field}
        ctx.request.state.audit = {"user_hmacs": self.pseudonyms.at(seed_rows), "n_users": len(body["results"]),
                                   "models": {"lookalike": self.snapshot.as_of}, "seed_size": int(len(seed_rows))}
        return json_response(body)


def json_response(body: dict) -> Response:
    """orjson straight to bytes: a 10,000-user answer is megabytes, and the stdlib encoder is ~10× slower."""
    return Response(orjson.dumps(body), media_type="application/json")


def _with_offer(model: ServedModel, X: np.ndarray, offer: dict) -> np.ndarray:
    """Set the campaign columns the uplift model was trained with to the offer asked about."""
    spec = model.scorer.spec
    X = X.copy()
    for name, value in offer.items():
        if name not in spec.names:
            continue
        j = spec.names.index(name)
        if name in spec.categorical:
            cats = spec.categorical[name]
            X[:, j] = cats.index(value) if value in cats else np.nan
        else:
            X[:, j] = value
    return X


protect(Opscore, settings)
