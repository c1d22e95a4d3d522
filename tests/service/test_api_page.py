"""The API page: its assets load without a key, /docs.json lists every route the service serves with who
may call it, and the page renders in headless Chromium (Debian's package, which `make install` installs)
and runs a call with a key."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

from service.auth import is_open
from tests.service.conftest import ROOT, server_env

CHROMIUM = Path("/usr/bin/chromium")
# Flags that work here: no sandbox (root in CI), no GPU, and nothing fetched from outside.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
# Every path the service's ASGI app routes, a mount's templates spelt `{}`, printed by a fresh interpreter
# with the server's environment (the service module reads its settings and store at import).
SERVED_ROUTES = """
import json
from starlette.routing import Mount
from service.service import Opscore

def walk(routes, prefix=""):
    for route in routes:
        if isinstance(route, Mount):
            yield from walk(route.routes, prefix + route.path) if route.routes else [prefix + route.path + "/{}"]
        else:
            yield prefix + route.path
print(json.dumps(sorted(set(walk(Opscore.to_asgi().routes)))))
"""


def test_the_api_page_loads_without_a_key(server):
    """/docs leads to the Swagger UI at /, and the page's scripts and styles load without a key."""
    page = httpx.get(server.url + "/docs", follow_redirects=True)
    assert page.status_code == 200 and "swagger" in page.text.lower()
    assets = set(re.findall(r'(?:src|href)="\.?(/?static_content/[^"]+)"', page.text))
    assert assets
    for asset in assets:
        assert httpx.get(server.url + "/" + asset.lstrip("/")).status_code == 200, asset


def test_the_spec_lists_every_served_route_and_who_may_call_it(server, all_champions, bento_home):
    spec = httpx.get(server.url + "/docs.json").json()
    r = subprocess.run([sys.executable, "-c", SERVED_ROUTES], cwd=ROOT, env=server_env(all_champions, bento_home),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

    def template(path: str) -> str:
        return re.sub(r"\{[^}]*\}", "{}", path)

    assert {template(path) for path in spec["paths"]} == {template(path) for path in json.loads(r.stdout)}
    assert spec["components"]["securitySchemes"]["bearer"] | {"description": ""} == {
        "type": "http", "scheme": "bearer", "description": ""}
    security = {(path, method): op["security"] for path, item in spec["paths"].items() for method, op in item.items()}
    for (path, _), needed in security.items():
        assert (needed == []) == is_open(path), path
    assert security["/v1/models", "get"] == [{"bearer": ["campaign", "risk"]}]
    assert security["/v1/credit/score", "post"] == [{"bearer": ["risk"]}]
    assert security["/v1/churn/score", "post"] == [{"bearer": ["campaign"]}]
    assert security["/schema.json", "get"] == [{"bearer": []}]  # any valid key
    for path in ("/livez", "/readyz", "/metrics", "/", "/docs.json", "/docs/"):
        assert security[path, "get"] == []
    assert "ModelList" in spec["components"]["schemas"]


def _paths_on(page: Page) -> list[str]:
    # Swagger UI breaks long paths with zero-width spaces.
    return [p.replace("\u200b", "") for p in page.locator(".opblock-summary-path").all_inner_texts()]


def _authorize(page: Page, key: str) -> None:
    page.click("button.authorize")
    page.fill(".modal-ux input", key)
    page.click(".modal-ux button.authorize")
    page.click(".modal-ux button.btn-done")


def test_the_api_page_renders_in_chromium_and_runs_a_call_with_a_key(server, keys, tmp_path):
    """The operations are listed, and a person who authorizes with a key gets GET /v1/models answered."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `make install` installs Debian's chromium package"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)  # a fresh profile
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            # Only the server itself: the page's analytics tag has nowhere to go.
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server.url)
                       else route.abort())
            page.goto(server.url + "/docs")
            page.wait_for_selector(".opblock-summary-path")
            assert {"/v1/churn/score", "/v1/credit/score", "/v1/lookalike", "/v1/models", "/readyz"} <= set(_paths_on(page))
            page.screenshot(path=tmp_path / "api-page.png", full_page=True)
            _authorize(page, keys["risk"])
            models = page.locator(".opblock", has=page.locator(".opblock-summary-path[data-path='/v1/models']"))
            models.locator(".opblock-summary").click()
            models.locator("button.try-out__btn").click()
            with page.expect_response(lambda answer: answer.url.endswith("/v1/models")) as answer:
                models.locator("button.execute").click()
            assert answer.value.status == 200
            assert answer.value.request.headers["authorization"] == f"Bearer {keys['risk']}"
            assert {m["name"] for m in answer.value.json()["models"]} >= {"churn", "credit_features"}
            shown = models.locator(".live-responses-table tbody .response-col_status").first
            assert shown.inner_text().strip() == "200"  # what the person sees
            models.screenshot(path=tmp_path / "api-page-called.png")
        finally:
            browser.close()
    for shot in ("api-page.png", "api-page-called.png"):
        assert (tmp_path / shot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
