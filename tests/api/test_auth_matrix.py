"""Who may call what: every operation of the live ``/openapi.json`` against no token, a wrong token, a viewer
and a client.

The operations are read from the app's own OpenAPI document (at collection time, to name each test after its
operation, and again over HTTP in a test that fails when the two differ), so a new route is covered the day
it is added. The roles each operation admits are stated here, independently of the code (``expected_roles``):
reads admit viewers except the admin-only ones, client operations admit clients, everything else is admin
only. For every operation under ``/api/v1/llm``:

- its OpenAPI security requirement lists exactly those roles;
- no ``Authorization`` header → 401 problem+json with ``WWW-Authenticate: Bearer``;
- an unknown token → 401 problem+json;
- a viewer or client token the operation does not admit → 403 problem+json naming the roles it needs, and
  no table changed;
- a viewer or client token it admits → neither 401 nor 403.

Path parameters name real objects (a provider, ``reasoning``, a user with an override, a custom type) and
writes carry a valid body, so that the role is the only reason to refuse. SQLite only: authentication and
roles do not depend on the database. One seeded app serves the whole module; every test calls it from a
client address of its own, so that the wrong tokens sent by one test do not count against the next.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from llmconfig import LLMConfigService
from llmconfig.api import create_app
from llmconfig.config import ConfigUpdate
from llmconfig.config.schemas import InteractionTypeCreate
from llmconfig.db.models import Base
from llmconfig.providers import ProviderCreate
from llmconfig.providers.schemas import ProviderKeyCreate
from llmconfig.settings import Settings
from llmconfig.tokens import TokenService
from tests.api.conftest import API, problem_of

OPEN_PATHS = {"/health", "/metrics"}  # probes and scrapers: no token
MIN_OPERATIONS = 15
FAILURES_BEFORE_LOCKOUT = 10
# Reads a viewer may not make: tokens are the keys to the API.
ADMIN_ONLY_READS = {("GET", f"{API}/tokens"), ("GET", f"{API}/providers/{{provider_id}}/keys")}
# What agents need (DESIGN §9): resolve, the revision, the change stream, spent budgets and usage events.
CLIENT_OPERATIONS: set[tuple[str, str]] = {
    ("GET", f"{API}/resolve/{{interaction_type}}"),
    ("GET", f"{API}/revision"),
    ("GET", f"{API}/changes"),
    ("GET", f"{API}/spend"),
    ("POST", f"{API}/usage/events"),
}


def _document() -> dict[str, Any]:
    """The app's OpenAPI document, built at collection time without touching a database."""
    settings = Settings(
        _env_file=None,
        database_url="sqlite://",
        secret_backend="local",
        master_key="A" * 43 + "=",  # 32 zero bytes: nothing is ever encrypted with it
        master_key_file=Path(os.devnull),
    )
    app = create_app(settings)
    try:
        return app.openapi()
    finally:
        app.state.service.close()


def _operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, item in document["paths"].items() for method in item]


DOCUMENT = _document()
OPERATIONS = _operations(DOCUMENT)
PROTECTED = [(method, path) for method, path in OPERATIONS if path.startswith(f"{API}/")]


def _params(operations: list[tuple[str, str]]) -> list[Any]:
    return [pytest.param(method, path, id=f"{method} {path}") for method, path in operations]


def expected_roles(method: str, path: str) -> set[str]:
    if (method, path) in CLIENT_OPERATIONS:
        return {"client", "admin"}
    if method == "GET" and (method, path) not in ADMIN_ONLY_READS:
        return {"viewer", "admin"}
    return {"admin"}


def _role_params(admitted: bool) -> list[Any]:
    return [
        pytest.param(role, method, path, id=f"{role} {method} {path}")
        for role in ("viewer", "client")
        for method, path in PROTECTED
        if (role in expected_roles(method, path)) is admitted
    ]


# --------------------------------------------------------------------------------------------- fixture


@dataclass
class Matrix:
    service: LLMConfigService
    client: TestClient
    admin: dict[str, str]
    viewer: dict[str, str]
    client_token: dict[str, str]
    path_values: dict[str, str]

    def url(self, path: str) -> str:
        url = path
        for name, value in self.path_values.items():
            url = url.replace(f"{{{name}}}", value)
        assert "{" not in url, f"no plausible value for a path parameter of {path}: add one to path_values"
        return url

    def snapshot(self) -> dict[str, list[str]]:
        """Every row of every table, but when a token was last used (authenticating records it)."""
        with self.service.engine.connect() as connection:
            return {
                table.name: sorted(
                    repr(tuple(row))
                    for row in connection.execute(select(*(c for c in table.c if c.name != "last_used_at")))
                )
                for table in Base.metadata.sorted_tables
            }

    def headers_of(self, role: str) -> dict[str, str]:
        return self.viewer if role == "viewer" else self.client_token

    def call(self, method: str, path: str, headers: dict[str, str]) -> Any:
        body = request_body(DOCUMENT, method, path, self.path_values)
        return self.client.request(method, self.url(path), headers=headers, json=body)


@dataclass
class World:
    service: LLMConfigService
    app: Any
    admin: dict[str, str]
    viewer: dict[str, str]
    client_token: dict[str, str]
    path_values: dict[str, str]


@pytest.fixture(scope="module")
def world(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One seeded app for the module: each test gets its own client address, hence its own auth limiter state."""
    directory = tmp_path_factory.mktemp("auth-matrix")
    shutil.copyfile(sqlite_template, directory / "matrix.db")
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("LLMCONFIG_") and not name.startswith("LLMCONFIG_TEST_"):
                patch.delenv(name)
        settings = Settings(
            _env_file=None,
            database_url=f"sqlite:///{directory / 'matrix.db'}",
            master_key_file=directory / "llmconfig.key",
            cache_ttl=0,
            request_timeout=2,
        )
    service = LLMConfigService(settings)
    tokens = TokenService(sessions=service.sessions)
    admin_token, _ = tokens.create(role="admin", name="matrix-admin")
    viewer_token, _ = tokens.create(role="viewer", name="matrix-viewer")
    client_token, _ = tokens.create(role="client", name="matrix-client")
    _, spare = tokens.create(role="viewer", name="matrix-spare")
    # Nothing listens on the discard port: the few operations that reach the provider fail fast, on loopback.
    provider, _ = service.providers.add(
        ProviderCreate(name="matrix-openai", provider_type="openai", api_base_url="http://127.0.0.1:9/v1"),
        actor="seed",
        validate=False,
    )
    service.config.set_global("reasoning", ConfigUpdate(provider_id=provider.id, model_name="gpt-4o"), actor="seed")
    key = service.providers.keys.add(
        provider.id, ProviderKeyCreate(api_key=SecretStr("sk-matrix-key-0123456789")), actor="seed"
    )
    service.types.add(InteractionTypeCreate(name="triage", kind="chat"), actor="seed")
    service.config.set_override(
        "alice", "tools", ConfigUpdate(provider_id=provider.id, model_name="gpt-4o"), actor="seed"
    )
    service.config.set_group_entry(
        "matrix-team", "reasoning", ConfigUpdate(provider_id=provider.id, model_name="gpt-4o"), actor="seed"
    )
    try:
        yield World(
            service=service,
            app=create_app(settings, service=service),
            admin={"Authorization": f"Bearer {admin_token}"},
            viewer={"Authorization": f"Bearer {viewer_token}"},
            client_token={"Authorization": f"Bearer {client_token}"},
            path_values={
                "token_id": spare.id,
                "key_id": key.key_id,
                "provider_id": provider.id,
                "interaction_type": "reasoning",
                "user_id": "alice",
                "group": "matrix-team",
                "name": "triage",
                "model_name": "gpt-4o",
                "scope": "type:reasoning",
            },
        )
    finally:
        service.close()


@pytest.fixture
def matrix(world: World, request: pytest.FixtureRequest) -> Iterator[Matrix]:
    with TestClient(world.app, raise_server_exceptions=False, client=(request.node.name, 50000)) as client:
        yield Matrix(
            service=world.service,
            client=client,
            admin=world.admin,
            viewer=world.viewer,
            client_token=world.client_token,
            path_values=world.path_values,
        )


# --------------------------------------------------------------------------------------------- bodies


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def _instance(document: dict[str, Any], schema: dict[str, Any], hints: dict[str, Any], name: str = "") -> Any:
    """A small valid instance of ``schema``; ``hints`` gives plausible values by property name."""
    schema = _resolve(document, schema)
    if name in hints:
        return hints[name]
    if "anyOf" in schema:
        options = [option for option in schema["anyOf"] if _resolve(document, option).get("type") != "null"]
        return _instance(document, options[0], hints, name) if options else None
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        required = schema.get("required", [])
        properties = schema.get("properties", {})
        return {key: _instance(document, properties[key], hints, key) for key in required if key in properties}
    if kind == "array":
        return []
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return max(0.5, float(schema.get("minimum", 0.5)))
    if kind == "boolean":
        return True
    return "matrix-value"


def takes_json(method: str, path: str) -> bool:
    return "application/json" in DOCUMENT["paths"][path][method.lower()].get("requestBody", {}).get("content", {})


def request_body(document: dict[str, Any], method: str, path: str, path_values: dict[str, str]) -> Any:
    """A valid JSON body for the operation, or None when it takes none."""
    content = document["paths"][path][method.lower()].get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return None
    hints = {
        "name": "matrix-new",
        "provider_type": "openai",
        "api_base_url": "http://127.0.0.1:9/v1",
        "provider_id": path_values["provider_id"],
        "model_name": "gpt-4o",
        "kind": "chat",
        "version": 1,
        "role": "client",
        "api_key": "sk-matrix-added-key-0123",
    }
    return _instance(document, content["application/json"]["schema"], hints)


# --------------------------------------------------------------------------------------------- tests


def test_the_matrix_covers_every_operation_of_the_live_schema(matrix: Matrix) -> None:
    response = matrix.client.get("/openapi.json")
    assert response.status_code == 200
    live = _operations(response.json())
    assert sorted(live) == sorted(OPERATIONS), "the collected operations differ from what /openapi.json serves"
    assert len(PROTECTED) >= MIN_OPERATIONS
    assert {path for _, path in OPERATIONS if not path.startswith(f"{API}/")} == OPEN_PATHS


@pytest.mark.parametrize(("method", "path"), _params(PROTECTED))
def test_every_api_operation_declares_bearer_security_with_the_roles_it_admits(method: str, path: str) -> None:
    operation = DOCUMENT["paths"][path][method.lower()]
    requirements = operation.get("security", [])
    assert [set(r) for r in requirements] == [{"HTTPBearer"}], "clients learn from the schema that a token is needed"
    assert set(requirements[0]["HTTPBearer"]) == expected_roles(method, path)
    assert {"401", "403"} <= set(operation["responses"])


@pytest.mark.parametrize(("method", "path"), _params(PROTECTED))
def test_no_token_is_401(matrix: Matrix, method: str, path: str) -> None:
    before = matrix.snapshot()
    response = matrix.call(method, path, headers={})
    assert response.status_code == 401, response.text
    problem_of(response)
    assert response.headers.get("www-authenticate", "").lower().startswith("bearer")
    assert matrix.snapshot() == before


@pytest.mark.parametrize(("method", "path"), _params([op for op in PROTECTED if takes_json(*op)]))
def test_no_token_is_401_even_when_the_body_is_not_json(matrix: Matrix, method: str, path: str) -> None:
    """Authentication comes first: a client without a token learns nothing from how its body is parsed."""
    response = matrix.client.request(
        method, matrix.url(path), content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401, response.text
    problem_of(response)


@pytest.mark.parametrize(("method", "path"), _params(PROTECTED))
def test_wrong_token_is_401(matrix: Matrix, method: str, path: str) -> None:
    before = matrix.snapshot()
    response = matrix.call(method, path, headers={"Authorization": "Bearer llmc_not-a-real-token"})
    assert response.status_code == 401, response.text
    problem_of(response)
    assert matrix.snapshot() == before


@pytest.mark.parametrize(("role", "method", "path"), _role_params(admitted=False))
def test_a_role_the_operation_does_not_admit_is_403_naming_the_roles_needed(
    matrix: Matrix, role: str, method: str, path: str
) -> None:
    before = matrix.snapshot()
    response = matrix.call(method, path, headers=matrix.headers_of(role))
    assert response.status_code == 403, response.text
    detail = problem_of(response)["detail"]
    needed = " or ".join(r for r in ("client", "viewer", "admin") if r in expected_roles(method, path))
    assert f"needs an {needed} token" in detail or f"needs a {needed} token" in detail, detail
    assert f"{role} tokens may only" in detail
    assert matrix.snapshot() == before


@pytest.mark.parametrize(
    ("role", "method", "path"), [p for p in _role_params(admitted=False) if takes_json(*p.values[1:])]
)
def test_a_role_not_admitted_is_403_even_when_the_body_is_not_json(
    matrix: Matrix, role: str, method: str, path: str
) -> None:
    """FastAPI parses the body before the dependencies run; the refusal still comes first."""
    response = matrix.client.request(
        method,
        matrix.url(path),
        content=b"{not json",
        headers={**matrix.headers_of(role), "Content-Type": "application/json"},
    )
    assert response.status_code == 403, response.text
    assert f"{role} tokens may only" in problem_of(response)["detail"]


@pytest.mark.parametrize(("role", "method", "path"), _role_params(admitted=True))
def test_a_role_the_operation_admits_gets_through(matrix: Matrix, role: str, method: str, path: str) -> None:
    if path == f"{API}/changes":  # an endless stream: its status and first line are the answer
        with matrix.client.stream(method, matrix.url(path), headers=matrix.headers_of(role)) as stream:
            assert stream.status_code == 200
            assert next(stream.iter_lines()).startswith("retry:")
        return
    response = matrix.call(method, path, headers=matrix.headers_of(role))
    assert response.status_code not in (401, 403), response.text
    assert response.status_code < 500, response.text


def test_a_viewer_may_read_the_catalog_but_not_refresh_it(matrix: Matrix) -> None:
    url = matrix.url(f"{API}/providers/{{provider_id}}/models")
    assert matrix.client.get(url, headers=matrix.viewer).status_code == 200
    refused = matrix.client.get(url, params={"refresh": "true"}, headers=matrix.viewer)
    assert refused.status_code == 403
    assert problem_of(refused)["detail"].startswith("Refreshing the catalog calls the provider: this needs an admin")


@pytest.mark.parametrize("path", sorted(OPEN_PATHS))
def test_health_and_metrics_answer_without_a_token(matrix: Matrix, path: str) -> None:
    response = matrix.client.get(path)
    assert response.status_code == 200, response.text
    assert "security" not in DOCUMENT["paths"][path]["get"]


def test_repeated_bad_tokens_slow_down_only_bad_tokens(matrix: Matrix) -> None:
    providers = f"{API}/providers"
    for attempt in range(FAILURES_BEFORE_LOCKOUT):
        response = matrix.client.get(providers, headers={"Authorization": f"Bearer wrong-{attempt}"})
        assert response.status_code == 401, f"attempt {attempt + 1}: {response.text}"

    response = matrix.client.get(providers, headers={"Authorization": "Bearer wrong-again"})
    assert response.status_code == 429, response.text
    problem_of(response)
    retry_after = response.headers.get("retry-after", "")
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 60, retry_after

    # The same client's valid tokens still get in.
    assert matrix.client.get(providers, headers=matrix.admin).status_code == 200
    assert matrix.client.get(providers, headers=matrix.viewer).status_code == 200
