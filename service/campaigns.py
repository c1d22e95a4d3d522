"""Campaign plans over HTTP: `POST /v1/campaigns/plan`, `GET /v1/campaigns/{id}` and `/assignments`
(pages of JSON, or the whole plan as CSV or Parquet), `DELETE /v1/campaigns/{id}`.

Routes of the mounted `/v1` FastAPI app (`mount`), so that /docs.json lists them and the auth
middleware guards and audits them like the rest.
"""

from __future__ import annotations

import io
from datetime import date, datetime, timezone
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, FastAPI, Query, Request
from starlette.responses import JSONResponse, Response

from scoring.campaign import PlanError, make_plan
from scoring.plan_request import PlanRequest
from scoring.plans import CANCELLED, COLUMNS, SENT, PlanStore
from scoring.settings import get_settings
from service.batches import LaneFull
from service.mounted import SCOPES, WORKER
from service.served import NotReady, Preparing
from service.worker import Worker

settings = get_settings()
router = APIRouter()
PAGE_MAX = 10_000
_STORE: dict[str, PlanStore] = {}


def store() -> PlanStore:
    """This worker's handle on the plan store, opened on first use."""
    if "store" not in _STORE:
        _STORE["store"] = PlanStore(settings.plans_db)
    return _STORE["store"]


def _error(status: int, message: str, field: str | None = None, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message, **({"field": field} if field else {})}, status, headers=headers or None)


# Every route under it, for campaign keys only.
SCOPES.require("/v1/campaigns", "campaign")


@router.post("/campaigns/plan")
async def plan_campaign(body: PlanRequest, request: Request) -> Response:
    """Whom to contact, with which arm, within budget, capacities and contact caps, keeping a random
    holdout: the plan's id and summary (assignments from `GET /v1/campaigns/{id}/assignments`)."""
    w = WORKER.get("worker")
    if w is None:
        return _error(503, "campaign plans are not available: the worker is not loaded")
    try:
        stored, created = await WORKER["lane"].run(_plan, w, body)
    except Preparing as e:
        return _error(503, str(e), **{"Retry-After": str(e.retry_after)})
    except NotReady as e:
        return _error(503, str(e))
    except PlanError as e:
        return _error(e.status, str(e), e.field)
    except LaneFull as e:
        return _error(429, str(e), **{"Retry-After": str(e.retry_after)})
    s = stored.summary
    request.state.audit = {"n_users": s.get("audience_size", 0), "models": _versions(s), "plan_id": stored.plan_id,
                           "created": created}
    return Response(orjson.dumps(s), 201 if created else 200, media_type="application/json")


def _plan(w: Worker, body: PlanRequest):
    return make_plan(w.planned_for(), store(), body, settings.contact_window_days)


@router.get("/campaigns/{plan_id}")
async def plan_summary(plan_id: str) -> Response:
    """A stored plan's summary and status."""
    found = store().get(plan_id)
    if found is None:
        return _error(404, "no plan with this id", "plan_id")
    return Response(orjson.dumps({**found.summary, "status": found.status}), media_type="application/json")


@router.get("/campaigns/{plan_id}/assignments")
async def assignments(plan_id: str, offset: Annotated[int, Query(ge=0)] = 0,
                      limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 1000,
                      format: Literal["json", "csv", "parquet"] = "json") -> Response:
    """The plan's assignments (user, arm, channel, window, expected uplift, net value, reasons, holdout):
    JSON in pages of `limit` from `offset`, or the whole plan as CSV or Parquet."""
    found = store().get(plan_id)
    if found is None:
        return _error(404, "no plan with this id", "plan_id")
    if format == "json":
        page = store().assignments(plan_id, offset, limit)
        total = found.summary.get("planned_users", 0)
        nxt = offset + len(page) if offset + len(page) < total else None
        body = {"plan_id": plan_id, "offset": offset, "total": total, "next_offset": nxt,
                "columns": list(COLUMNS), "assignments": page.to_dict(orient="records")}
        return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")
    frame = store().assignments(plan_id)
    if format == "csv":
        return Response(frame.to_csv(index=False), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{plan_id}.csv"'})
    out = io.BytesIO()
    frame.to_parquet(out, index=False)
    return Response(out.getvalue(), media_type="application/vnd.apache.parquet",
                    headers={"Content-Disposition": f'attachment; filename="{plan_id}.parquet"'})


@router.delete("/campaigns/{plan_id}")
async def cancel(plan_id: str) -> Response:
    """Cancel a plan not yet sent: its users' contact caps are released."""
    found = store().get(plan_id)
    if found is None:
        return _error(404, "no plan with this id", "plan_id")
    if found.status != CANCELLED:
        if found.status == SENT or date.fromisoformat(found.send_date) < datetime.now(timezone.utc).date():
            return _error(409, "the plan cannot be cancelled: it was sent, or its send date has passed and it "
                               "may have been", "plan_id")
        if not store().cancel(plan_id):
            return _error(409, "the plan cannot be cancelled: it was sent", "plan_id")
    return JSONResponse({"plan_id": plan_id, "status": CANCELLED})


def _versions(summary: dict) -> dict[str, str]:
    return {e: m["version"] for e, m in summary.get("models", {}).items()}


def mount(app: FastAPI) -> None:
    """Add the campaign routes to the mounted /v1 app (whose handler answers bad bodies with 400s)."""
    # Route by route rather than include_router, whose lazily included router has no path of its
    # own: route templates (metrics, audit) and BentoML's /docs.json read each route's path.
    app.router.routes.extend(router.routes)
