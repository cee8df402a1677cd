"""The read snapshot: reads answered from memory, and every change seen by the next read that may show it.

On SQLite and PostgreSQL. Statements are counted on the engine with SQLAlchemy's ``before_cursor_execute``
event, so "no database round trip" is checked on the real connection, not inferred.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import event

from llmconfig import LLMConfigService
from llmconfig.api import create_app
from llmconfig.config import ConfigUpdate
from llmconfig.settings import Settings
from llmconfig.tokens import TokenService
from tests.api.conftest import API
from tests.cli_helpers import Cli
from tests.helpers import configure_reasoning
from tests.peers import OpenAIPeer
from tests.test_snapshot import pushed_service

HOUR = 3600.0


@dataclass
class Reading:
    service: LLMConfigService
    client: TestClient
    admin: dict[str, str]
    provider_id: str

    def statements_during(self, action: Callable[[], Any]) -> list[str]:
        """The SQL statements ``action`` sends through the app's engine."""
        statements: list[str] = []

        def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            statements.append(statement)

        event.listen(self.service.engine, "before_cursor_execute", note)
        try:
            action()
        finally:
            event.remove(self.service.engine, "before_cursor_execute", note)
        return statements

    def get(self, path: str) -> Any:
        response = self.client.get(f"{API}{path}", headers=self.admin)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def reading_factory(
    migrated_database_url: str, settings_factory: Callable[..., Settings], openai_peer: OpenAIPeer
) -> Iterator[Callable[[float], Reading]]:
    """``make(ttl)``: an app on a configured database (provider ``local``, ``reasoning`` on gpt-4o)."""
    made: list[tuple[LLMConfigService, TestClient]] = []

    def make(ttl: float) -> Reading:
        service = pushed_service(settings_factory(database_url=migrated_database_url, cache_ttl=ttl))
        configure_reasoning(service, openai_peer)
        token, _ = TokenService(sessions=service.sessions).create(role="admin", name="reader")
        client = TestClient(create_app(service.settings, service=service))
        client.__enter__()
        made.append((service, client))
        provider_id = service.providers.get("local").id
        return Reading(service, client, {"Authorization": f"Bearer {token}"}, provider_id)

    yield make
    for service, client in made:
        client.__exit__(None, None, None)
        service.services.close()


READS = ("/config", "/config/reasoning", "/config/summary", "/providers", "/interaction-types")


def test_reads_are_answered_without_a_database_round_trip_when_nothing_changed(
    reading_factory: Callable[[float], Reading],
) -> None:
    reading = reading_factory(HOUR)
    paths = [*READS, f"/providers/{reading.provider_id}", "/providers/local"]
    first = {path: reading.get(path) for path in paths}  # read once (and the token's first use written)

    again: dict[str, list[Any]] = {path: [] for path in paths}
    statements = reading.statements_during(
        lambda: [again[path].append(reading.get(path)) for _ in range(20) for path in paths]
    )

    assert statements == []
    assert all(answers == [first[path]] * 20 for path, answers in again.items())
    assert first["/config"]["reasoning"]["model_name"] == "gpt-4o"
    assert first["/providers/local"] == first[f"/providers/{reading.provider_id}"]
    assert "api_key" not in first["/providers/local"]


def test_answers_are_those_of_the_services(reading_factory: Callable[[float], Reading]) -> None:
    reading = reading_factory(HOUR)
    services = reading.service.services
    for _ in range(2):  # read from the database, then from memory
        assert reading.get("/config") == {
            name: entry.model_dump(mode="json") for name, entry in services.config.get_global().items()
        }
        assert reading.get("/config/reasoning") == services.config.get_entry("reasoning").model_dump(mode="json")
        assert reading.get("/config/summary") == {"summary": services.config.summary()}
        assert reading.get("/providers") == [p.model_dump(mode="json") for p in services.providers.list()]
        assert reading.get("/interaction-types") == [t.model_dump(mode="json") for t in services.types.list()]


def test_unknown_subjects_stay_404_and_are_not_kept(reading_factory: Callable[[float], Reading]) -> None:
    reading = reading_factory(HOUR)
    for _ in range(2):
        assert reading.client.get(f"{API}/providers/nope", headers=reading.admin).status_code == 404
        assert reading.client.get(f"{API}/config/tools", headers=reading.admin).status_code == 404  # not configured
        assert reading.client.get(f"{API}/config/nope", headers=reading.admin).status_code == 404
    snapshot = reading.client.app.state.snapshot  # type: ignore[attr-defined]
    assert len(snapshot) == 0


def test_a_write_through_the_api_is_read_back_at_once(reading_factory: Callable[[float], Reading]) -> None:
    reading = reading_factory(HOUR)
    client, admin = reading.client, reading.admin
    for path in (*READS, "/providers/local"):
        reading.get(path)

    put = client.put(
        f"{API}/config/reasoning", json={"provider_id": "local", "model_name": "gpt-4o-mini"}, headers=admin
    )
    assert put.status_code == 200, put.text
    assert reading.get("/config")["reasoning"]["model_name"] == "gpt-4o-mini"
    assert reading.get("/config/reasoning")["model_name"] == "gpt-4o-mini"
    assert "gpt-4o-mini" in reading.get("/config/summary")["summary"]

    renamed = client.patch(f"{API}/providers/local", json={"name": "renamed"}, headers=admin)
    assert renamed.status_code == 200, renamed.text
    assert client.get(f"{API}/providers/local", headers=admin).status_code == 404
    assert reading.get(f"/providers/{reading.provider_id}")["name"] == "renamed"
    assert [p["name"] for p in reading.get("/providers")] == ["renamed"]
    assert reading.get("/config")["reasoning"]["provider_name"] == "renamed"
    assert reading.get("/config/reasoning")["provider_name"] == "renamed"

    added = client.post(f"{API}/interaction-types", json={"name": "triage", "kind": "chat"}, headers=admin)
    assert added.status_code == 201, added.text
    assert "triage" in [t["name"] for t in reading.get("/interaction-types")]
    assert "triage: not configured" in reading.get("/config/summary")["summary"]


def test_validating_a_provider_shows_its_outcome_at_once(reading_factory: Callable[[float], Reading]) -> None:
    """A validation changes no version and writes no audit entry, but it changes what providers show."""
    reading = reading_factory(HOUR)
    before = reading.get("/providers/local")
    listed = reading.get("/providers")
    assert before["validation_status"] == "ok" and listed[0]["validated_at"] == before["validated_at"]

    time.sleep(0.01)  # a later validated_at, whatever the clock's resolution
    validated = reading.client.post(f"{API}/providers/local/validate", headers=reading.admin)
    assert validated.status_code == 200 and validated.json()["ok"], validated.text

    after = reading.get("/providers/local")
    assert after["validated_at"] != before["validated_at"]
    assert after["version"] == before["version"]
    assert reading.get("/providers")[0]["validated_at"] == after["validated_at"]


def _until(read: Callable[[], Any], wanted: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (seen := read()) != wanted:
        assert time.monotonic() < deadline, f"still {seen!r} after {timeout} s, expected {wanted!r}"
        time.sleep(0.05)


def test_a_change_by_another_process_is_seen(
    reading_factory: Callable[[float], Reading], migrated_database_url: str, tmp_path: Path
) -> None:
    """SQLite: within the TTL, by the revision check. PostgreSQL: pushed, as the TTL of an hour never runs out."""
    on_sqlite = migrated_database_url.startswith("sqlite")
    reading = reading_factory(1.0 if on_sqlite else HOUR)
    assert reading.get("/config/reasoning")["model_name"] == "gpt-4o"
    assert reading.get("/providers/local")["validation_status"] == "ok"
    cli = Cli(database_url=migrated_database_url, master_key_file=tmp_path / "llmconfig.key", cwd=tmp_path)

    cli.run("config", "set", "reasoning", "--provider", "local", "--model", "gpt-4o-mini")
    _until(lambda: reading.get("/config/reasoning")["model_name"], "gpt-4o-mini", timeout=15)
    assert reading.get("/config")["reasoning"]["model_name"] == "gpt-4o-mini"

    # A validation by another process: no audit entry, no new version, but announced all the same.
    validated_at = reading.get("/providers/local")["validated_at"]
    cli.run("providers", "validate", "local")
    _until(lambda: reading.get("/providers/local")["validated_at"] != validated_at, True, timeout=15)


@pytest.mark.parametrize("migrated_database_url", ["postgresql"], indirect=True)
def test_a_change_through_another_replica_is_pushed(
    reading_factory: Callable[[float], Reading], migrated_database_url: str, settings_factory: Callable[..., Settings]
) -> None:
    reading = reading_factory(HOUR)
    assert reading.get("/config/reasoning")["model_name"] == "gpt-4o"
    replica = LLMConfigService(settings_factory(database_url=migrated_database_url))
    try:
        replica.config.set_global("reasoning", ConfigUpdate(provider_id="local", model_name="gpt-4o-mini"), actor="b")
    finally:
        replica.close()
    _until(lambda: reading.get("/config")["reasoning"]["model_name"], "gpt-4o-mini", timeout=15)


@pytest.mark.parametrize("migrated_database_url", ["sqlite"], indirect=True)
def test_a_read_whose_answer_cannot_be_checked_is_503_until_the_database_is_back(
    migrated_database_url: str, settings_factory: Callable[..., Settings], openai_peer: OpenAIPeer, tmp_path: Path
) -> None:
    """The kept answer is not served as current when the revision check cannot tell whether it is."""
    directory = tmp_path / "db"
    directory.mkdir()
    database = directory / "llmconfig.db"
    Path(migrated_database_url.removeprefix("sqlite:///")).rename(database)
    token = "llmc_env-admin-token-for-the-outage-test"
    service = LLMConfigService(
        settings_factory(database_url=f"sqlite:///{database}", cache_ttl=0, admin_token=SecretStr(token))
    )
    try:
        configure_reasoning(service, openai_peer)
        with TestClient(create_app(service.settings, service=service), raise_server_exceptions=False) as client:
            admin = {"Authorization": f"Bearer {token}"}
            assert client.get(f"{API}/config", headers=admin).status_code == 200

            service.engine.dispose()
            moved = directory.with_name("db-moved")
            directory.rename(moved)
            down = client.get(f"{API}/config", headers=admin)
            assert down.status_code == 503, down.text
            assert "cannot be used" in down.json()["detail"]

            moved.rename(directory)
            back = client.get(f"{API}/config", headers=admin)
            assert back.status_code == 200 and back.json()["reasoning"]["model_name"] == "gpt-4o"
    finally:
        service.close()


@pytest.mark.parametrize("migrated_database_url", ["sqlite"], indirect=True)
def test_kept_answers_go_only_to_callers_the_route_admits(reading_factory: Callable[[float], Reading]) -> None:
    """Answered from memory or not, a read checks its caller the same way (the policy of api/authz.py)."""
    reading = reading_factory(HOUR)
    client, tokens = reading.client, reading.service.tokens
    viewer, _ = tokens.create(role="viewer", name="v")
    agent, _ = tokens.create(role="client", name="agent")
    revoked, info = tokens.create(role="viewer", name="soon-revoked")
    paths = [*READS, "/providers/local"]
    for path in paths:  # kept, and the paths known to be answered from memory
        for _ in range(2):
            reading.get(path)
            assert client.get(f"{API}{path}", headers={"Authorization": f"Bearer {revoked}"}).status_code == 200
    tokens.revoke(info.id)

    for path in paths:
        assert client.get(f"{API}{path}", headers={"Authorization": f"Bearer {viewer}"}).status_code == 200
        refused = client.get(f"{API}{path}", headers={"Authorization": f"Bearer {agent}"})
        assert refused.status_code == 403 and "viewer or admin" in refused.json()["detail"]
        assert client.get(f"{API}{path}").status_code == 401
        assert client.get(f"{API}{path}", headers={"Authorization": f"Bearer {revoked}"}).status_code == 401
        assert client.get(f"{API}{path}", headers={"Authorization": "Basic abc"}).status_code == 401

    answered = client.get(f"{API}/config", headers=reading.admin)
    assert answered.headers["content-type"] == "application/json"
    assert answered.headers["content-security-policy"].startswith("default-src 'self'")
    assert answered.headers["x-content-type-options"] == "nosniff"
    # Every 200 is counted under its route, answered from memory or not: 2 + 2 before the revocation, 1 after.
    metrics = client.get("/metrics").text
    assert served_count(metrics, "/api/v1/llm/providers/{provider_id}") == 5
    assert served_count(metrics, "/api/v1/llm/interaction-types") == 5


def served_count(metrics: str, route: str) -> float:
    pattern = rf'^llmconfig_http_requests_total\{{method="GET",route="{re.escape(route)}",status="200"\}} (\S+)$'
    found = re.search(pattern, metrics, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


@pytest.mark.parametrize("migrated_database_url", ["sqlite"], indirect=True)
def test_checks_fall_due_in_the_background_not_in_requests(reading_factory: Callable[[float], Reading]) -> None:
    """With changes not pushed, the server checks its snapshots ahead of the TTL without any request."""
    reading = reading_factory(1.0)
    for path in READS:
        reading.get(path)
    statements = reading.statements_during(lambda: time.sleep(3))  # no request meanwhile
    assert any("config_revision" in statement for statement in statements), statements
    assert any("api_tokens" in statement for statement in statements), statements
    snapshot = reading.client.app.state.snapshot  # type: ignore[attr-defined]
    assert len(snapshot) == len(READS)  # nothing changed: everything still kept
