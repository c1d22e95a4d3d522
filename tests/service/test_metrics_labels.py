"""/metrics labelled by route template: unknown paths add no series, and the patch of BentoML holds."""

from __future__ import annotations

import asyncio
import re
import secrets

import bentoml
import httpx
from bentoml._internal.server.http import instruments
from bentoml._internal.server.metrics.prometheus import PrometheusClient
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from service.metrics import BentoMetrics, RouteLabelledMetrics, label_metrics_by_route
from service.routes import _FIXED, UNMATCHED, route_template


async def ok(request):
    return PlainTextResponse("ok")


async def static(scope, receive, send):  # an app without routes of its own, as StaticFiles is
    await PlainTextResponse("file")(scope, receive, send)


APP = Starlette(routes=[Route("/v1/churn/score", ok, methods=["POST"]), Route("/v1/campaigns/{plan_id}/assignments", ok),
                        Mount("/v1", Starlette(routes=[Route("/models", ok)])), Mount("/static_content", static),
                        Mount("/docs", Starlette(routes=[Route("/", ok)]))])


def template(path: str, method: str = "GET") -> str:
    return route_template({"type": "http", "path": path, "method": method, "app": APP, "root_path": ""})


def test_paths_are_labelled_by_the_template_of_the_route_they_go_to():
    assert template("/v1/churn/score", "POST") == "/v1/churn/score"
    assert template("/v1/churn/score", "GET") == "/v1/churn/score"  # the wrong method: still that route (405)
    assert template("/v1/churn/score/", "POST") == "/v1/churn/score"  # the router redirects it there
    assert template("/v1/campaigns/p-42/assignments") == "/v1/campaigns/{plan_id}/assignments"
    assert template("/v1/models") == "/v1/models"  # inside a mounted app
    assert template("/docs") == "/docs/"
    assert template("/static_content/swagger-ui.css") == "/static_content/{path}"
    assert template("/v1/nothing") == template("/x" * 30_000) == template("/") == UNMATCHED


def test_the_fixed_route_cache_holds_only_routes():
    for _ in range(1000):
        template(f"/probe/{secrets.token_hex(8)}")
        template(f"/v1/campaigns/{secrets.token_hex(8)}/assignments")
    assert {path for app, path in _FIXED if app is APP} <= {"/v1/churn/score", "/v1/models", "/docs/"}


def labelled(path: str) -> str:
    """The /metrics text after one request for `path` through BentoML's metrics middleware as patched, on
    a real Prometheus client; also checks the app behind it got the path as sent."""
    client = PrometheusClient(multiproc=False)
    seen = {}

    async def app(scope, receive, send):
        seen["path"] = scope["path"]
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = RouteLabelledMetrics(app, namespace=f"opscore_test_{secrets.token_hex(4)}")
    middleware._setup(metrics_client=client, duration_buckets=(0.1, 1.0))

    async def send(message):
        pass

    asyncio.run(middleware({"type": "http", "path": path, "method": "GET", "app": APP, "root_path": ""}, None, send))
    assert seen["path"] == path
    return client.generate_latest().decode()


def test_bentoml_labels_its_series_by_template_and_the_app_still_sees_the_path():
    probe = f"/probe-{secrets.token_hex(8)}"
    text = labelled(probe)
    assert 'endpoint="unmatched"' in text and probe not in text
    assert 'endpoint="/v1/campaigns/{plan_id}/assignments"' in labelled("/v1/campaigns/p-42/assignments")


def test_bentoml_builds_its_metrics_middleware_from_the_patched_name():
    """Fails if BentoML stops looking the class up in `instruments` when it builds an app (then the
    patch would do nothing) or renames it."""

    @bentoml.service(name="labels_probe")
    class Probe:
        @bentoml.api
        def echo(self, x: int = 1) -> int:
            return x

    label_metrics_by_route()
    assert instruments.RunnerTrafficMetricsMiddleware is RouteLabelledMetrics
    assert issubclass(RouteLabelledMetrics, BentoMetrics) and BentoMetrics.__name__ == "RunnerTrafficMetricsMiddleware"
    middlewares = [m.cls for m in Probe.to_asgi().user_middleware]
    assert RouteLabelledMetrics in middlewares and BentoMetrics not in middlewares


ENDPOINT_LABEL = re.compile(r'endpoint="([^"]*)"')


def metrics(server) -> str:
    r = httpx.get(server.url + "/metrics", timeout=30)
    assert r.status_code == 200
    return r.text


def test_unique_unauthenticated_paths_leave_metrics_bounded(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/probe-first").status_code == 401  # the one series every unknown path shares
        before = metrics(server)
        probes = [f"/probe-{secrets.token_hex(8)}" for _ in range(10_000)]
        for path in probes:
            assert client.get(path).status_code == 401
    after = metrics(server)
    # Only the counts' digits may grow; without the templates each path added ~3.9 KB (39 MB here).
    assert len(after) - len(before) < 2048, (len(before), len(after))
    assert not any(p in after for p in probes[::97]) and "probe" not in after


def test_normal_routes_show_up_by_template(server, keys):
    auth = {"Authorization": f"Bearer {keys['campaign']}"}
    assert httpx.post(server.url + "/v1/churn/score", json={"user_ids": [1]}, headers=auth).status_code == 200
    assert httpx.get(server.url + "/v1/models", headers=auth).status_code == 200
    assert httpx.get(server.url + f"/v1/{secrets.token_hex(4)}", headers=auth).status_code == 404
    labels = set(ENDPOINT_LABEL.findall(metrics(server)))
    assert {"/v1/churn/score", "/v1/models", UNMATCHED} <= labels, labels
    assert labels <= {"/v1/churn/score", "/v1/abuse/score", "/v1/response/score", "/v1/credit/score", "/v1/lookalike",
                      "/v1/models", "/livez", "/healthz", "/readyz", "/", "/docs/", "/docs.json", "/schema.json",
                      "/static_content/{path}", "/v1/monitoring/drift", "/v1/tables/{name}/score",
                      "/v1/forecast/disbursement", "/v1/campaigns/plan", "/v1/campaigns/{plan_id}",
                      "/v1/campaigns/{plan_id}/assignments", UNMATCHED}
