"""The opscore BentoML service: scoring endpoints for the four champions, lookalike, models, readiness.

Models come from the BentoML store (`python -m service import-models` copies each MLflow
`@champion` there); the service verifies each one and the feature snapshot at start-up and
reports ready only when all of them load, match their checksums and score their input example.
Each endpoint declares beside itself which key scopes may call it.
"""

from __future__ import annotations

import gc
import logging

import bentoml
import orjson
from bentoml.models import BentoModel
from starlette.responses import Response

from scoring.registry import FORECAST_MODEL, MODEL_NAMES, SNAPSHOT_MODEL
from scoring.settings import DEV_AUDIT_SECRET, get_settings
from service.audiences import lookalike_audience
from service.audit import AUDIT_LOGS
from service.auth import protect
from service.batches import BatchLane, BatchProcesses, LaneFull
from service.campaigns import mount as mount_campaigns
from service.config import SERVICE_CONFIG
from service.logs import keep_caller_input_out_of_logs
from service.metrics import label_metrics_by_route
from service.monitoring import publish
from service.mounted import SCOPES, WORKER, docs_app, models_app
from service.openapi import ApiSpec
from service.requests import LookalikeRequest, RequestError, ResponseScoreRequest, ScoreRequest
from service.served import NotReady
from service.worker import ArmQuery, Worker

log = logging.getLogger("opscore.service")
keep_caller_input_out_of_logs()
settings = get_settings()
mount_campaigns(models_app)


def _stored(name: str) -> BentoModel | None:
    """A reference to the newest stored version, or None so a missing model keeps readiness red
    instead of stopping the server from starting."""
    try:
        return BentoModel(bentoml.models.get(f"{name}:latest").tag)
    except bentoml.exceptions.NotFound:
        log.error("%s is not in the BentoML store: run `python -m service import-models`", name)
        return None


def json_response(body: dict) -> Response:
    """orjson straight to bytes: a 10,000-user answer is megabytes, and the stdlib encoder is ~10× slower."""
    return Response(orjson.dumps(body), media_type="application/json")


def refusal(ctx: bentoml.Context, status: int, body: dict) -> Response:
    # BentoML sends the context's status with whatever the endpoint returns.
    ctx.response.status_code = status
    return json_response(body)


def lane_full(ctx: bentoml.Context, e: LaneFull) -> Response:
    response = refusal(ctx, 429, {"error": str(e)})
    response.headers["Retry-After"] = str(e.retry_after)
    return response


@bentoml.service(name="opscore", **SERVICE_CONFIG)
@bentoml.asgi_app(models_app, path="/v1")
@bentoml.asgi_app(docs_app, path="/docs")
class Opscore:
    # Declared at class scope so that `bentoml build` carries them into the Bento.
    churn_ref = _stored(MODEL_NAMES["churn"])
    abuse_ref = _stored(MODEL_NAMES["abuse"])
    response_ref = _stored(MODEL_NAMES["response"])
    credit_ref = _stored(MODEL_NAMES["credit"])
    snapshot_ref = _stored(SNAPSHOT_MODEL)
    forecast_ref = _stored(FORECAST_MODEL)
    table_refs = {name: _stored(name) for name in settings.table_models}

    def __init__(self) -> None:
        keep_caller_input_out_of_logs()  # again in the worker, after BentoML has set its logging up
        if settings.audit_secret.get_secret_value() == DEV_AUDIT_SECRET:
            log.warning("OPSCORE_AUDIT_SECRET is the development default: anyone can reverse the audit "
                        "log's pseudonyms; set it in any real deployment")
        refs = {endpoint: getattr(self, f"{endpoint}_ref") for endpoint in MODEL_NAMES}
        # In a dict the references are not attributes, so BentoML's descriptor does not resolve them.
        tables = {name: ref.resolve() if ref else None for name, ref in self.table_refs.items()}
        self.worker = w = Worker.load(settings, self.snapshot_ref, refs, tables, self.forecast_ref)
        # Everything loaded so far lives as long as the worker. Freezing it keeps the collector's
        # full sweeps, which a 10,000-row answer's objects trigger several times, off those
        # million objects (at 10k rows that halved the median in-process formatting time), and keeps
        # the batch processes forked next from copying the pages the collector would touch.
        gc.freeze()
        processes = BatchProcesses(w, settings.batch_slots, settings.batch_nice) if settings.batch_processes else None
        self.lane = BatchLane(settings.batch_slots, settings.batch_queue, settings.batch_nice, processes)
        w.start_planning()  # a thread: after the fork, which carries only the thread that forks
        WORKER.update(worker=w, lane=self.lane)
        if w.drift is not None:
            publish(w.drift)
        if w.problems:
            log.error("NOT READY: %s", "; ".join(f"{k}: {v}" for k, v in w.problems.items()))
        else:
            log.info("ready: %s; snapshot as of %s (%d users)",
                     ", ".join(f"{m.registry_name} v{m.version}" for m in [*w.models.values(), *w.tables.values()]),
                     w.snapshot.as_of, len(w.snapshot.ids))

    def __is_ready__(self) -> bool:
        # The audit logs are the middleware's, in this same worker: calls they cannot record are refused.
        return not self.worker.problems and all(audit.usable() for audit in AUDIT_LOGS)

    async def _score(self, endpoint: str, ctx: bentoml.Context, user_ids, records, reasons: int,
                     arms: ArmQuery | None = None) -> Response:
        """A handful of users is scored on the event loop: a hop to another process would cost more
        than the scoring. A larger batch goes to the batch lane, so that it cannot stall single users."""
        size = len(user_ids if user_ids is not None else records)
        try:
            body, audit = await self.lane.call(size, self.worker.score, endpoint, user_ids, records, reasons, arms)
        except LaneFull as e:
            return lane_full(ctx, e)
        except NotReady as e:
            return refusal(ctx, 503, {"error": str(e)})
        except RequestError as e:
            return refusal(ctx, e.status, {"error": str(e), "field": e.field})
        ctx.request.state.audit = audit
        return Response(body, media_type="application/json")

    @bentoml.api(route=SCOPES.require("/v1/churn/score", "campaign"), input_spec=ScoreRequest, output_spec=dict)
    async def churn(self, ctx: bentoml.Context, user_ids=None, records=None, reasons: int = 3) -> Response:
        """Probability that an active user goes silent in the next 30 days, with reasons and segment."""
        return await self._score("churn", ctx, user_ids, records, reasons)

    @bentoml.api(route=SCOPES.require("/v1/abuse/score", "campaign", "risk"), input_spec=ScoreRequest,
                 output_spec=dict)
    async def abuse(self, ctx: bentoml.Context, user_ids=None, records=None, reasons: int = 3) -> Response:
        """Probability that an account is a coupon hunter, with the size of its device/invite ring."""
        return await self._score("abuse", ctx, user_ids, records, reasons)

    @bentoml.api(route=SCOPES.require("/v1/response/score", "campaign"), input_spec=ResponseScoreRequest,
                 output_spec=dict)
    async def response(self, ctx: bentoml.Context, user_ids=None, records=None, reasons: int = 3, arms=None,
                       value_per_conversion=None, incentive_cost=None, contact_cost=None) -> Response:
        """Uplift of every campaign arm (incentive/channel/window) or of the arms named, and the best arm:
        by uplift, or by net value given a value per conversion (and costs); null when none is positive."""
        query = ArmQuery(arms, value_per_conversion, incentive_cost, contact_cost)
        return await self._score("response", ctx, user_ids, records, reasons, query)

    @bentoml.api(route=SCOPES.require("/v1/credit/score", "risk"), input_spec=ScoreRequest, output_spec=dict)
    async def credit(self, ctx: bentoml.Context, user_ids=None, records=None, reasons: int = 3) -> Response:
        """Behaviour scorecard: PD, score points, points per feature and the reasons that cost points."""
        return await self._score("credit", ctx, user_ids, records, reasons)

    @bentoml.api(route=SCOPES.require("/v1/lookalike", "campaign"), input_spec=LookalikeRequest, output_spec=dict)
    async def lookalike(self, ctx: bentoml.Context, **req) -> Response:
        """Users who look like a seed audience, with the features that set the seed apart and a self-check."""
        try:
            return await self.lane.run(self._lookalike, ctx, req)
        except LaneFull as e:
            return lane_full(ctx, e)

    def _lookalike(self, ctx: bentoml.Context, req: dict) -> Response:
        w = self.worker
        if w.lookalike is None:
            why = w.problems.get("lookalike", "not loaded")
            return refusal(ctx, 503, {"error": f"lookalike is not available: {why}"})
        try:
            body, seed_rows = lookalike_audience(w.lookalike, w.snapshot, w.snapshot_path / "seeds", w.abuse_scores,
                                                 settings.lookalike_min_seed, req)
        except RequestError as e:
            return refusal(ctx, e.status, {"error": str(e), "field": e.field})
        ctx.request.state.audit = {"user_hmacs": w.pseudonyms.at(seed_rows), "n_users": len(body["results"]),
                                   "models": {"lookalike": w.snapshot.as_of}, "seed_size": int(len(seed_rows))}
        return json_response(body)


protect(Opscore, settings, SCOPES)
Opscore.add_asgi_middleware(ApiSpec, service=Opscore, scopes=SCOPES)
# Before BentoML builds the app: /metrics keeps one series per route, not one per path a caller sends.
label_metrics_by_route()
