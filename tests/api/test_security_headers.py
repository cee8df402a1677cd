"""Security headers on every response: the panel's page, its static files, the API (answers and refusals alike),
and the documentation pages, which get their own policy with their inline script allowed by its hash only."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import API, ApiContext

sqlite_only = pytest.mark.parametrize("migrated_database_url", ["sqlite"], indirect=True)

PANEL_DIRECTIVES = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def directives(response: httpx.Response) -> dict[str, str]:
    policy = response.headers["content-security-policy"]
    parsed = {}
    for part in policy.split(";"):
        name, _, value = part.strip().partition(" ")
        parsed[name] = value
    return parsed


def assert_strict(response: httpx.Response) -> None:
    policy = directives(response)
    for name, value in PANEL_DIRECTIVES.items():
        assert policy.get(name) == value, f"{name}: {policy.get(name)!r} in {response.request.url.path}"
    assert "unsafe" not in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"


@sqlite_only
def test_the_panel_its_static_files_and_the_api_answer_with_the_strict_policy(
    client: TestClient, api: ApiContext
) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert_strict(page)

    for asset, mime in (("/ui/js/app.js", "javascript"), ("/ui/css/app.css", "text/css"), ("/ui/favicon.svg", "svg")):
        response = client.get(asset)
        assert response.status_code == 200 and mime in response.headers["content-type"], asset
        assert_strict(response)

    listed = client.get(f"{API}/providers", headers=api.admin)
    assert listed.status_code == 200
    assert_strict(listed)
    # Refusals carry them too, including those the guards answer before any route runs.
    assert_strict(client.get(f"{API}/providers"))  # 401
    assert_strict(client.get(f"{API}/providers/nope", headers=api.admin))  # 404
    assert_strict(client.get(f"{API}/users/a%00b/config", headers=api.admin))  # 422 from the NUL guard
    assert_strict(client.get("/health"))
    assert_strict(client.get("/openapi.json"))


@sqlite_only
def test_the_panel_page_needs_nothing_the_policy_blocks(client: TestClient) -> None:
    html = client.get("/").text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "an inline script"
    assert "<style" not in html and "style=" not in html, "an inline style"
    assert not re.search(r"\son[a-z]+=", html), "an inline event handler"
    assert "data:" not in html and "javascript:" not in html


@sqlite_only
def test_the_documentation_allows_its_own_inline_script_by_hash_and_nothing_else_inline(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200
    scripts = re.findall(r"<script>(.*?)</script>", docs.text, re.DOTALL)
    assert len(scripts) == 1 and "SwaggerUIBundle" in scripts[0]
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    script_src = directives(docs)["script-src"].split()
    assert script_src == ["'self'", "https://cdn.jsdelivr.net", f"'sha256-{digest}'"]
    assert directives(docs)["frame-ancestors"] == "'none'" and directives(docs)["object-src"] == "'none'"
    assert docs.headers["x-content-type-options"] == "nosniff"

    redoc = client.get("/redoc")
    assert redoc.status_code == 200
    assert directives(redoc)["script-src"].split() == ["'self'", "https://cdn.jsdelivr.net"]
    assert "https://fonts.gstatic.com" in directives(redoc)["font-src"]

    redirect = client.get("/docs/oauth2-redirect")
    assert redirect.status_code == 200
    assert re.search(r"'sha256-[A-Za-z0-9+/=]+'", directives(redirect)["script-src"])
    # The panel keeps its own policy whatever the documentation needs.
    assert_strict(client.get("/"))
