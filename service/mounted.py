"""The plain HTTP apps mounted beside the BentoML service, in the same worker: the model list, drift,
the disbursement forecast, models trained from a user's own table, and /docs.

FastAPI rather than bare Starlette: BentoML lists a mounted FastAPI app's routes in /docs.json.
Their own documentation routes are off: the service's API page is at /.
"""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.responses import JSONResponse, RedirectResponse, Response

from scoring.settings import get_settings
from service.auth import RouteScopes
from service.batches import BatchLane, LaneFull
from service.requests import RequestError
from service.served import NotReady
from service.worker import Worker

settings = get_settings()
SCOPES = RouteScopes()
# This worker's models and batch lane, set by the service when the worker has loaded them.
WORKER: dict[str, Worker | BatchLane] = {}


class ModelInfo(BaseModel):
    name: str
    version: str
    run_id: str
    endpoint: str
    trained_at: str
    metrics: dict[str, float]


class ModelList(BaseModel):
    models: list[ModelInfo]


models_app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@models_app.get(SCOPES.require("/v1/models", "campaign", "risk").removeprefix("/v1"), response_model=ModelList)
async def list_models() -> JSONResponse:
    """The models being served: name, version, run id, endpoint, training time and held-out metrics."""
    w = WORKER.get("worker")
    served = [(m, f"/v1/{m.endpoint}/score") for m in w.models.values()] if w else []
    served += [(m, f"/v1/tables/{name}/score") for name, m in w.tables.items()] if w else []
    served += [(w.forecast, "/v1/forecast/disbursement")] if w and w.forecast else []
    return JSONResponse({"models": [
        {**m.identity, "endpoint": endpoint, "trained_at": m.trained_at, "metrics": m.metrics} for m, endpoint in served
    ]})


@models_app.get(SCOPES.require("/v1/monitoring/drift", "campaign", "risk").removeprefix("/v1"))
async def drift() -> Response:
    """PSI of every feature and score against the training rows (and the previous serving snapshot)."""
    w = WORKER.get("worker")
    if w is None or w.drift is None:
        why = w.problems.get("drift", "not measured") if w else "the worker is not loaded"
        return JSONResponse({"error": f"drift is not available: {why}"}, status_code=503)
    return Response(orjson.dumps(w.drift), media_type="application/json")


@models_app.exception_handler(RequestValidationError)
async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """400 naming the field (the first at fault; `detail` lists each), as the service's other endpoints
    answer, and never echoing the value sent."""
    detail = [{"loc": _location(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return JSONResponse({"error": detail[0]["msg"], "field": _field(detail[0]["loc"]), "detail": detail}, 400)


def _field(loc: list) -> str:
    """The innermost named field of a location: pydantic adds list indexes and, inside a union, the
    alternative's type name (`constrained-int`), which name no field."""
    names = [str(part) for part in loc if isinstance(part, str) and (part.isidentifier() or part == "[key]")]
    return names[-1] if names else str(loc[-1])


def _location(loc: tuple) -> list:
    """The field's path; a refused mapping key is the caller's value, so it is named as `[key]` only."""
    loc = list(loc)
    return [*loc[:-2], "[key]"] if loc and loc[-1] == "[key]" else loc


class ForecastedDay(BaseModel):
    date: str
    forecast: float
    lower: float
    upper: float


class ForecastAnswer(BaseModel):
    model: dict[str, str]
    origin: str
    level: float
    horizon: int
    days: list[ForecastedDay]


@models_app.get(SCOPES.require("/v1/forecast/disbursement", "campaign", "risk").removeprefix("/v1"),
                response_model=ForecastAnswer)
async def disbursement_forecast(days: int = Query(14, description="days ahead of the origin, 1 to the stored "
                                                                  "horizon (28 by default)")) -> JSONResponse:
    """Draw-down volume (CNY) forecast for each of the next `days` days after the last day of data (the
    origin), with its central interval (`level`, 80%), as stored when the forecast was trained."""
    w = WORKER.get("worker")
    if w is None or w.forecast is None:
        why = w.problems.get("forecast", "not loaded") if w else "the worker is not loaded"
        return JSONResponse({"error": f"the forecast is not available: {why}"}, 503)
    try:
        return JSONResponse(w.forecast.answer(days))
    except ValueError as e:
        return JSONResponse({"error": str(e), "field": "days"}, 400)


for _name, _scopes in settings.table_models.items():
    SCOPES.require(f"/v1/tables/{_name}/score", *_scopes)


@models_app.post("/tables/{name}/score")
async def score_table(name: str, request: Request) -> Response:
    """Records scored by a model trained from a user's own table (named in OPSCORE_TABLE_MODELS):
    `{"records": [{column: value}], "reasons": 3}`, the table's own columns and types."""
    if name not in settings.table_models:
        return JSONResponse({"error": "no table model by this name is served: GET /v1/models lists them",
                             "field": "name"}, 404)
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return JSONResponse({"error": "the body is not valid JSON", "field": "body"}, 400)
    if "worker" not in WORKER:
        return JSONResponse({"error": "the service is still starting"}, 503)
    worker, lane = WORKER["worker"], WORKER["lane"]
    records = body.get("records") if isinstance(body, dict) else None
    try:
        rows = len(records) if isinstance(records, list) else 0
        text, request.state.audit = await lane.call(rows, worker.score_table, name, body)
    except RequestError as e:
        return JSONResponse({"error": str(e), "field": e.field}, e.status)
    except NotReady as e:
        return JSONResponse({"error": str(e)}, 503)
    except LaneFull as e:
        return JSONResponse({"error": str(e)}, 429, headers={"Retry-After": str(e.retry_after)})
    return Response(text, media_type="application/json")


docs_app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


# BentoML serves the API page (Swagger UI) at /; /docs, where people look for it, leads there.
@docs_app.get("/", response_class=RedirectResponse, status_code=307)
async def api_page() -> RedirectResponse:
    """Leads to the API page at /."""
    return RedirectResponse("/")
