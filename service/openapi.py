"""The API page's OpenAPI document (/docs.json): BentoML's own, completed.

BentoML builds the document from the service's endpoints and merges in the paths of any mounted FastAPI
app (which is why /v1/models and /docs are FastAPI apps), but its specification objects have no place
for security schemes or requirements, so it cannot say that calls need a key. It also declares OpenAPI
3.0.2 for pydantic 2 schemas, which are JSON Schema 2020-12 as OpenAPI 3.1 uses (`exclusiveMinimum: 0`
is invalid 3.0). The middleware here answers /docs.json with that document, declared 3.1, completed with
the bearer scheme, each operation's requirement (the scopes that may call it; none on the open routes,
as the auth middleware decides) and refusals, and the routes BentoML serves without listing them.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import orjson
from bentoml._internal.service.openapi import APP_TAG, INFRA_TAG

from service.auth import RouteScopes, is_open

SPEC_PATH = "/docs.json"
# In place of BentoML's placeholder (a README template naming BentoML's team as the contact).
INFO = {"title": "opscore", "version": version("opscore"), "description": (
    "Scores for the campaign and risk systems: churn, marketing response (uplift per campaign arm), promo abuse, "
    "the behaviour credit scorecard, lookalike audiences, and the champions being served.\n\n"
    "Every call outside *Infrastructure* needs an API key: press **Authorize** and paste it. "
    "Each operation's security requirement lists the key scopes that may call it (none listed: any key).")}
SCHEME = "bearer"
BEARER = {"type": "http", "scheme": "bearer",
          "description": "An opscore API key (`python -m service keys add NAME --scopes campaign,risk`)."}
REFUSAL = {"type": "object", "properties": {"error": {"type": "string"}, "request_id": {"type": "string"}}}
REFUSALS = {
    "401": "missing or unknown API key",
    "403": "the key's scopes may not call this route",
}
# Refusals of the calls that take a body (the scoring endpoints and lookalike).
BODY_REFUSALS = {
    "413": "request body above the documented limit (OPSCORE_MAX_BODY_MB)",
    "429": "the batch lane is full (large calls): retry after the Retry-After header's seconds",
    "503": "the model or index this call needs is not ready",
}


def _get(description: str, media: str, tag: str = INFRA_TAG.name, **extra: Any) -> dict[str, Any]:
    return {"get": {"tags": [tag], "description": description, **extra,
                    "responses": {"200": {"description": "OK", "content": {media: {}}}}}}


# Routes BentoML serves but leaves out of its document.
UNLISTED = {
    "/": _get("The API page (Swagger UI).", "text/html"),
    SPEC_PATH: _get("This OpenAPI document.", "application/json"),
    "/static_content/{asset}": _get("The API page's scripts, styles and icons.", "application/octet-stream",
                                    parameters=[{"name": "asset", "in": "path", "required": True,
                                                 "schema": {"type": "string"}}]),
    "/schema.json": _get("The service's schema in BentoML's own form, which its Python client reads.",
                         "application/json", tag=APP_TAG.name),
}


def document(service: Any, scopes: RouteScopes) -> dict[str, Any]:
    """BentoML's OpenAPI document for `service`, completed as the module docstring says."""
    spec = service.openapi_spec.asdict()
    spec["openapi"] = "3.1.0"
    spec["info"] = INFO
    spec["paths"] = {**spec["paths"], **UNLISTED}
    spec.setdefault("components", {})["securitySchemes"] = {SCHEME: BEARER}
    for path, item in spec["paths"].items():
        for operation in item.values():
            _secure(path, operation, scopes)
    return spec


def _secure(path: str, operation: dict[str, Any], scopes: RouteScopes) -> None:
    # BentoML keys some responses by int: JSON has only text keys (and orjson refuses others).
    operation["responses"] = {str(status): r for status, r in operation["responses"].items()}
    operation.setdefault("tags", [INFRA_TAG.name if is_open(path) else APP_TAG.name])
    if is_open(path):
        operation["security"] = []  # no key asked, and none sent by the API page
        return
    # OpenAPI 3.1 lets a non-OAuth requirement list roles: the key scopes that may call the route
    # (an empty list: any valid key).
    operation["security"] = [{SCHEME: sorted(scopes.needed(path) or ())}]
    refusals = {**REFUSALS, **BODY_REFUSALS} if "requestBody" in operation else REFUSALS
    for status, why in refusals.items():
        operation["responses"].setdefault(status, {"description": why,
                                                   "content": {"application/json": {"schema": REFUSAL}}})


class ApiSpec:
    """ASGI middleware answering GET/HEAD /docs.json with `document`, built once per worker on first ask."""

    def __init__(self, app, service: Any, scopes: RouteScopes):
        self.app = app
        self.service = service
        self.scopes = scopes
        self._body: bytes | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != SPEC_PATH or scope["method"] not in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        if self._body is None:
            self._body = orjson.dumps(document(self.service, self.scopes))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(self._body)).encode())]})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else self._body})
