"""Schemathesis against the app's own ``/openapi.json``, on SQLite and on PostgreSQL.

Every operation of the schema gets, with an admin token, over a database seeded with a provider that points
at the OpenAI peer, a configured ``reasoning`` type, a custom type and one user override:

1. schemathesis' coverage phase: the boundary values of every parameter and body field, valid and invalid;
2. hostile but schema-valid values: a NUL character in each string path parameter and top-level body
   field, 1000 characters in each path parameter without a maximum length, and 2**63 in each integer query
   parameter without a maximum;
3. property-based fuzzing (hypothesis): valid (positive) and invalid (negative) requests, path parameters
   often naming the seeded objects and config bodies often naming the seeded provider and its models.

Each response must not be a server error (5xx; a provider that fails its check is the caller's problem, a 422),
must conform to the schema (status code, content type, body), and when a writing operation (POST, PUT, PATCH,
DELETE) fails with a 4xx or 5xx, every table must be exactly as before that request.

Findings are collected rather than raised at the first one, so that a run names every distinct problem of an
operation with a request that reproduces it. The run is derandomized, so CI sends the same requests every
time; set ``LLMCONFIG_TEST_FUZZ_EXAMPLES`` (per operation and mode) for a longer, random exploration.

Outgoing connections stay on this machine by the app's own guard: the service runs with the outbound allow-list
limited to loopback (``LLMCONFIG_OUTBOUND_ALLOW=127.0.0.0/8,::1``), so a fuzzed ``api_base_url`` such as
``https://api.openai.com`` (or a provider type's default, api.anthropic.com) is answered ``blocked``. Two parts
of the test network make sure of it: name lookups never leave the machine (every name but ``localhost``
resolves to 192.0.2.1, a documentation address the guard must refuse), and a tripwire refuses and records any
connection to an address off loopback; a test fails if it ever fired.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import hypothesis
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Connection, Table

from llmconfig import LLMConfigService
from llmconfig.api import create_app
from llmconfig.config import ConfigUpdate
from llmconfig.config.schemas import InteractionTypeCreate
from llmconfig.db.models import Base
from llmconfig.providers import ProviderCreate
from llmconfig.providers.outbound import effective_address
from llmconfig.settings import Settings
from llmconfig.tokens import TokenService
from tests.api.conftest import API, ApiContext
from tests.helpers import OPENAI_PEER_KEY
from tests.peers import OpenAIPeer

EXAMPLES = int(os.environ.get("LLMCONFIG_TEST_FUZZ_EXAMPLES", "15"))  # per operation and mode
WRITING_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
LOOPBACK_ONLY = ("127.0.0.0/8", "::1")
UNROUTABLE = "192.0.2.1"  # TEST-NET-1 (RFC 5737): what every name but localhost resolves to here
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
NUL = "nul\x00byte"
LONG = "x" * 1000  # longer than any column

SEED_PROVIDER = "peer-openai"
SEED_USER = "alice"
SEED_CUSTOM_TYPE = "triage"


def _schema_operations() -> list[str]:
    """Every "METHOD path" of the app's OpenAPI document, read at collection time (no database needed)."""
    settings = Settings(
        _env_file=None,
        database_url="sqlite://",
        secret_backend="local",
        master_key="A" * 43 + "=",  # 32 zero bytes: nothing is ever encrypted with it
        master_key_file=Path(os.devnull),
    )
    app = create_app(settings)
    try:
        document = app.openapi()
    finally:
        app.state.service.close()
    return [f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item]


OPERATIONS = _schema_operations()
# The change stream never ends, so it cannot be judged by its answer; its one input (Last-Event-ID) and its
# access are pinned by tests/api/test_agents_api.py and the auth matrix.
FUZZED = [label for label in OPERATIONS if label != "GET /api/v1/llm/changes"]


# --------------------------------------------------------------------------------------------- test network


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class SandboxNetwork:
    """Name lookups that never leave the machine, and a tripwire on connections off loopback."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.attempts: list[str] = []
        real_getaddrinfo, real_connect = socket.getaddrinfo, socket.create_connection

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            name = host.decode() if isinstance(host, bytes) else str(host)
            try:
                ipaddress.ip_address(name.split("%", 1)[0])
            except ValueError:
                if name != "localhost":
                    host = UNROUTABLE
            return real_getaddrinfo(host, port, *args, **kwargs)

        def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
            if not _is_loopback(str(address[0])):
                self.attempts.append(f"{address[0]}:{address[1]}")
                raise ConnectionRefusedError(f"test network: {address[0]} is not loopback")
            return real_connect(address, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(socket, "create_connection", create_connection)


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxNetwork]:
    test_network = SandboxNetwork(monkeypatch)
    yield test_network
    assert test_network.attempts == [], "the app tried to connect off loopback"


@pytest.fixture
def guarded_api(
    request: pytest.FixtureRequest, migrated_database_url: str, settings_factory: Any, network: SandboxNetwork
) -> Iterator[ApiContext]:
    """Like the ``api`` fixture, with the outbound allow-list limited to loopback."""
    from tests.helpers import requested_timeout

    settings = settings_factory(
        database_url=migrated_database_url,
        cache_ttl=0,
        request_timeout=requested_timeout(request),
        outbound_allow=LOOPBACK_ONLY,
    )
    service = LLMConfigService(settings)
    try:
        tokens = TokenService(sessions=service.sessions)
        admin_token, _ = tokens.create(role="admin", name="test-admin")
        viewer_token, _ = tokens.create(role="viewer", name="test-viewer")
        yield ApiContext(service, create_app(settings, service=service), admin_token, viewer_token)
    finally:
        service.close()


# --------------------------------------------------------------------------------------------- fixtures

# Security is not fuzzed here (every request carries the admin token; test_auth_matrix and test_auth_throttle
# cover it). The admin token is never slowed, whatever else was sent; a 401, 403 or 429 for it is a finding.
CONFIG = {"generation": {"with-security-parameters": False}}
_loaded_schemas: dict[str, Any] = {}


def load_schema(app: Any) -> Any:
    """Schemathesis' view of the app's own ``/openapi.json``.

    Loading compiles the schema (half a second) and every app of this process serves the same document, so
    it is loaded once per distinct document; requests name their app explicitly (``call(app=...)``).
    """
    key = json.dumps(app.openapi(), sort_keys=True)
    if key not in _loaded_schemas:
        _loaded_schemas[key] = schemathesis.openapi.from_asgi(
            "/openapi.json", app, config=schemathesis.Config.from_dict(CONFIG)
        )
    return _loaded_schemas[key]


@dataclass
class Finding:
    problem: str
    request: str
    detail: str


def rows_of(connection: Connection, table: Table) -> frozenset[str]:
    quote = connection.dialect.identifier_preparer.quote
    columns = ", ".join(quote(column.name) for column in table.c if column.name != "last_used_at")
    return frozenset(map(repr, connection.exec_driver_sql(f"SELECT {columns} FROM {quote(table.name)}").fetchall()))


@dataclass
class Fuzz:
    api: ApiContext
    schema: Any
    provider_id: str
    catalog: list[str]
    token_id: str
    findings: dict[str, Finding] = field(default_factory=dict)
    requests_sent: int = 0

    def snapshot(self) -> dict[str, frozenset[str]]:
        """Every row of every table, read in one transaction.

        A superset of what GET /providers, /config, /interaction-types, /users/{id}/config and /audit show (it
        also covers catalogs, prices and the revision counter), and ten times cheaper than asking the API.
        When a token was last used is left out: authenticating a request records it. Usage events accepted
        earlier are written in the background; they are flushed first, so they are not taken for this request's.

        Rows are read as the driver gives them, without the columns' type conversions: a fuzzed operation that
        writes usage events grows that table to thousands of rows, read twice per request. Every table has a
        primary key, so a set of rows loses nothing.
        """
        assert self.api.service.flush_usage()
        with self.api.service.engine.connect() as connection:
            return {table.name: rows_of(connection, table) for table in Base.metadata.sorted_tables}

    def found(self, problem: str, request: str, detail: str) -> None:
        # One finding per distinct problem; keep the shortest request that shows it.
        current = self.findings.get(problem)
        if current is None or len(request) < len(current.request):
            self.findings[problem] = Finding(problem, request, detail)

    def report(self) -> str:
        return "\n\n".join(f"{f.problem}\n  request: {f.request}\n  {f.detail}" for f in self.findings.values())


@pytest.fixture
def fuzz(guarded_api: ApiContext, openai_peer: OpenAIPeer) -> Fuzz:
    api = guarded_api
    service = api.service
    provider, result = service.providers.add(
        ProviderCreate(
            name=SEED_PROVIDER, provider_type="openai", api_base_url=openai_peer.base_url, api_key=OPENAI_PEER_KEY
        ),
        actor="seed",
        validate=True,
    )
    assert result is not None and result.ok
    service.config.set_global("reasoning", ConfigUpdate(provider_id=provider.id, model_name="gpt-4o"), actor="seed")
    service.types.add(InteractionTypeCreate(name=SEED_CUSTOM_TYPE, kind="chat"), actor="seed")
    service.config.set_override(
        SEED_USER, "tools", ConfigUpdate(provider_id=provider.id, model_name="gpt-4o-mini"), actor="seed"
    )
    catalog = [entry.model_name for entry in service.providers.catalog(provider.id)]
    _, spare = TokenService(sessions=service.sessions).create(role="client", name="spare", actor="seed")
    return Fuzz(api=api, schema=load_schema(api.app), provider_id=provider.id, catalog=catalog, token_id=spare.id)


# --------------------------------------------------------------------------------------------- requests


def seeded_path_parameters(fuzz: Fuzz, operation: Any) -> list[dict[str, str]]:
    """Combinations of path parameters that name seeded objects (and a few near misses)."""
    values: dict[str, list[str]] = {
        "provider_id": [fuzz.provider_id, SEED_PROVIDER],
        "interaction_type": ["reasoning", "tools", "embeddings", SEED_CUSTOM_TYPE],
        "user_id": [SEED_USER, "bob"],
        "name": [SEED_CUSTOM_TYPE, "reasoning"],
        "model_name": ["gpt-4o"],
        "token_id": [fuzz.token_id, "test-viewer"],
    }
    names = {parameter.name for parameter in operation.path_parameters} & set(values)
    combos: list[dict[str, str]] = [{}]
    for name in sorted(names):  # parameters without seeds stay generated
        combos = [{**combo, name: value} for combo in combos for value in values[name]]
    return [combo for combo in combos if combo]


def realistic_body(fuzz: Fuzz, case: Any, model: str | None = None) -> None:
    """Point a generated config body at the seeded provider and one of its models (by default one that suits
    the interaction type in the path)."""
    if isinstance(case.body, dict) and "provider_id" in case.body:
        if model is None:
            embeddings = (case.path_parameters or {}).get("interaction_type") == "embeddings"
            model = "text-embedding-3-small" if embeddings else "gpt-4o"
        case.body = {**case.body, "provider_id": fuzz.provider_id, "model_name": model}


def coverage_cases(fuzz: Fuzz, operation: Any) -> Iterator[Any]:
    """Schemathesis' coverage phase, with the path parameters it does not probe naming seeded objects."""
    combos = seeded_path_parameters(fuzz, operation)
    cases = fuzz.schema.iter_coverage_cases(
        operation,
        generation_modes=list(GenerationMode),
        generation_config=fuzz.schema.config.generation_for(operation=operation),
    )
    for index, case in enumerate(cases):
        data = case.meta.phase.data if case.meta is not None else None
        location, probed = getattr(data, "parameter_location", None), getattr(data, "parameter", None)
        if combos:
            seeded = combos[index % len(combos)]
            case.path_parameters = {
                **case.path_parameters,
                **{name: value for name, value in seeded.items() if location != "path" or name != probed},
            }
        if location != "body":
            realistic_body(fuzz, case)
        if location != "header" and case.headers:
            # The schema allows any If-Match string; the app takes only a version number (422 otherwise).
            case.headers = {name: value for name, value in case.headers.items() if name.lower() != "if-match"}
        yield case


def hostile_cases(fuzz: Fuzz, operation: Any, base: Any) -> Iterator[Any]:
    """Schema-valid values that databases choke on, one at a time in the otherwise valid request ``base``."""
    base.path_parameters = {**(base.path_parameters or {}), **next(iter(seeded_path_parameters(fuzz, operation)), {})}
    realistic_body(fuzz, base)

    def variant(**changes: Any) -> Any:
        fields = {
            "path_parameters": dict(base.path_parameters or {}),
            "query": dict(base.query or {}),
            "headers": {},  # no If-Match: it would have to be the current version
            "body": base.body,
        }
        fields.update(changes)
        return operation.Case(media_type=base.media_type, **fields)

    for parameter in operation.path_parameters:
        yield variant(path_parameters={**base.path_parameters, parameter.name: NUL})
        if "maxLength" not in parameter.optimized_schema:
            yield variant(path_parameters={**base.path_parameters, parameter.name: LONG})
    for parameter in operation.query:
        schema = parameter.optimized_schema
        options = schema.get("anyOf", [schema])
        if any(option.get("type") == "integer" and "maximum" not in option for option in options):
            yield variant(query={**(base.query or {}), parameter.name: str(2**63)})
    if isinstance(base.body, dict):
        for key, value in base.body.items():
            if isinstance(value, str):
                yield variant(body={**base.body, key: NUL})


_FREE_FORM = ({"type": "string"}, {"anyOf": [{"type": "string"}, {"type": "null"}]})


def can_be_invalid(operation: Any, *, besides_path: bool = False) -> bool:
    """Whether a negative case exists: a body, a query parameter, or a parameter with constraints."""
    if operation.body or list(operation.query):
        return True
    for parameter in operation.iter_parameters():
        if besides_path and parameter.location.value == "path":
            continue
        schema = {k: v for k, v in parameter.optimized_schema.items() if k not in ("title", "description")}
        if schema not in _FREE_FORM:
            return True
    return False


def fuzzed_cases(fuzz: Fuzz, operation: Any, mode: GenerationMode) -> st.SearchStrategy[Any]:
    variants = [operation.as_strategy(generation_mode=mode)]
    combos = seeded_path_parameters(fuzz, operation)
    # A negative case needs something to break: with the path fixed, that must be another parameter or the body.
    if combos and (mode.is_positive or can_be_invalid(operation, besides_path=True)):
        variants.append(
            st.sampled_from(combos).flatmap(
                lambda combo: operation.as_strategy(generation_mode=mode, path_parameters=combo)
            )
        )
    strategy = st.one_of(variants)
    if mode.is_negative:
        return strategy

    def sometimes_realistic(drawn: tuple[Any, bool, str]) -> Any:
        case, use_seed, model = drawn
        if use_seed:
            realistic_body(fuzz, case, model)
        return case

    return st.tuples(strategy, st.booleans(), st.sampled_from(fuzz.catalog)).map(sometimes_realistic)


def fuzz_operation(fuzz: Fuzz, label: str, operation: Any, mode: GenerationMode) -> None:
    if mode.is_negative and not can_be_invalid(operation):
        return  # e.g. GET /health, GET /providers/{provider_id}: every string is a valid id

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize="LLMCONFIG_TEST_FUZZ_EXAMPLES" not in os.environ,
        phases=[hypothesis.Phase.generate],  # findings are collected, not raised, so there is nothing to shrink
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=fuzzed_cases(fuzz, operation, mode))
    def send(case: Any) -> None:
        exercise(fuzz, label, case)

    try:
        send()
    except hypothesis.errors.Unsatisfiable:
        if mode.is_positive:
            raise  # negative: schemathesis found no part of the request it could make invalid


# --------------------------------------------------------------------------------------------- checking


def describe(response: Any) -> str:
    """The request exactly as it was sent, compactly enough to paste into a bug report."""
    sent = response.request
    url = urlsplit(sent.url)
    parts = [f"{sent.method} {url.path}" + (f"?{url.query}" if url.query else "")]
    parts += [f"{name}: {value}" for name, value in sent.headers.items() if name.lower() == "if-match"]
    if sent.body:
        body = sent.body.decode("utf-8", "backslashreplace") if isinstance(sent.body, bytes) else str(sent.body)
        parts.append(f"body {body[:600]}")
    return "  ".join(parts)


def describe_case(case: Any) -> str:
    """The request a case stands for, when the app raised before answering it."""
    path = quote(case.formatted_path, safe="/")
    if case.query:
        path += "?" + urlencode(case.query, doseq=True)
    body = "" if isinstance(case.body, NotSet) else f"  body {json.dumps(case.body, default=repr)[:600]}"
    return f"{case.method.upper()} {path}{body}"


def exercise(fuzz: Fuzz, label: str, case: Any) -> None:
    """Send one case, run the checks, and for a failed write compare every table before and after."""
    before = fuzz.snapshot() if case.method.upper() in WRITING_METHODS else None
    try:
        response = case.call(headers=fuzz.api.admin, app=fuzz.api.app)
    except Exception as exc:  # the app raised instead of answering: a client gets a bare 500
        request = describe_case(case)
        cause = getattr(exc, "orig", None) or exc  # the driver's error, for database errors
        message = str(cause).splitlines()[0][:120] if str(cause) else ""
        fuzz.found(f"{label}: unhandled {type(exc).__name__} (500): {message}", request, "")
        status, text = 500, ""
    else:
        fuzz.requests_sent += 1
        request, status, text = describe(response), response.status_code, response.text[:400]
        check_response(fuzz, label, case, response, request)
    if before is not None and status >= 400:
        after = fuzz.snapshot()
        changed = sorted(table for table in before if before[table] != after[table])
        if changed:
            fuzz.found(f"{label}: {status} but table(s) {', '.join(changed)} changed", request, f"-> {text}")


def check_response(fuzz: Fuzz, label: str, case: Any, response: Any, request: str) -> None:
    status = response.status_code
    if status in (401, 403, 429):
        fuzz.found(f"{label}: the admin token got {status}", request, response.text[:300])
    try:
        case.validate_response(response, checks=CHECKS, headers=fuzz.api.admin, transport_kwargs={"app": fuzz.api.app})
    except FailureGroup as group:
        failures: list[Failure] = list(group.exceptions)
    except Failure as failure:
        failures = [failure]
    else:
        failures = []
    for failure in failures:
        fuzz.found(f"{label}: {failure.title} ({status})", request, f"-> {response.text[:400]}\n{failure}")


# --------------------------------------------------------------------------------------------- tests


def test_the_fuzzed_operations_are_every_operation_of_the_live_schema(api: ApiContext) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app, config=schemathesis.Config.from_dict(CONFIG))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {operation.label for operation in operations} == set(OPERATIONS)
    tags = {tag for operation in operations for tag in operation.tags or []}
    assert {"providers", "config", "users", "interaction types", "audit", "tokens", "operations"} <= tags


def test_the_harness_sees_every_change(fuzz: Fuzz) -> None:
    before = fuzz.snapshot()
    update = ConfigUpdate(provider_id=fuzz.provider_id, model_name="gpt-4o")
    fuzz.api.service.config.set_global("planning", update, actor="harness")
    after = fuzz.snapshot()
    assert {table for table in before if before[table] != after[table]} >= {"global_configs", "audit_entries"}


def test_the_tripwire_catches_a_connection_off_loopback(network: SandboxNetwork) -> None:
    with pytest.raises(ConnectionRefusedError, match="not loopback"):
        socket.create_connection((UNROUTABLE, 443), timeout=1)
    assert network.attempts == [f"{UNROUTABLE}:443"]
    network.attempts.clear()
    assert socket.getaddrinfo("api.openai.com", 443)[0][4][0] == UNROUTABLE


# Off loopback as the guard sees it: ::ffff:127.0.0.1 and 64:ff9b::7f00:1 count as loopback there.
_NOT_LOOPBACK = st.ip_addresses().filter(lambda ip: not effective_address(ip).is_loopback)
_HOST_NAMES = st.from_regex(r"\A[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,20}){1,3}\Z").filter(lambda h: h != "localhost")
GENERATED_BASE_URLS = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}:{port}{path}",
    st.sampled_from(["http", "https"]),
    st.one_of(_NOT_LOOPBACK.map(lambda ip: f"[{ip}]" if ip.version == 6 else str(ip)), _HOST_NAMES),
    st.integers(min_value=1, max_value=65535),
    st.sampled_from(["", "/v1", "/openai/v1"]),
)


@pytest.mark.parametrize("migrated_database_url", ["sqlite"], indirect=True)
def test_a_generated_base_url_off_loopback_is_blocked_not_contacted(fuzz: Fuzz) -> None:
    providers = f"{API}/providers"
    client = TestClient(fuzz.api.app)
    seen: list[str] = []

    @hypothesis.settings(max_examples=25, deadline=None, database=None, derandomize=True)
    @hypothesis.given(base_url=GENERATED_BASE_URLS, provider_type=st.sampled_from(["openai", "anthropic", "custom"]))
    def add(base_url: str, provider_type: str) -> None:
        body = {"name": "generated", "provider_type": provider_type, "api_base_url": base_url, "api_key": "sk-x" * 4}
        response = client.post(providers, params={"validate": "true"}, json=body, headers=fuzz.api.admin)
        if response.status_code == 422 and "validation" not in response.json():
            return  # refused as input (e.g. a port the URL rules reject) before any check
        assert response.status_code == 422, response.text
        assert response.json()["validation"]["status"] == "blocked", response.text
        seen.append(base_url)

    add()
    # A provider type's default base URL is held to the same rule.
    for provider_type in ("openai", "anthropic"):
        body = {"name": f"default-{provider_type}", "provider_type": provider_type}
        response = client.post(providers, params={"validate": "true"}, json=body, headers=fuzz.api.admin)
        assert response.status_code == 422 and response.json()["validation"]["status"] == "blocked", response.text
    assert len(seen) >= 20
    assert [p["name"] for p in client.get(providers, headers=fuzz.api.admin).json()] == [SEED_PROVIDER]


@pytest.mark.parametrize("label", FUZZED)
def test_operation_withstands_valid_and_invalid_requests(fuzz: Fuzz, label: str) -> None:
    method, path = label.split(" ", 1)
    operation = fuzz.schema[path][method]
    valid = None
    for case in coverage_cases(fuzz, operation):
        if valid is None and case.meta is not None and case.meta.generation.mode.is_positive:
            valid = case
        exercise(fuzz, label, case)
    for case in hostile_cases(fuzz, operation, valid) if valid is not None else ():
        exercise(fuzz, label, case)
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        fuzz_operation(fuzz, label, operation, mode)
    assert fuzz.requests_sent > 0
    if fuzz.findings:
        pytest.fail(f"{len(fuzz.findings)} problem(s) found:\n\n{fuzz.report()}", pytrace=False)
