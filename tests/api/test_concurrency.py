"""Optimistic locking under real concurrency: 50 simultaneous requests against a real uvicorn server.

Runs on SQLite (writers queue on the write lock) and PostgreSQL (writers race on row versions and
unique keys). Whatever the interleaving, exactly one writer wins, the others get 409 and never 5xx, and
the audit trail records only the winner.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, text
from sqlalchemy.orm import Session

from llmconfig.db.models import GlobalConfig, Provider, UserConfig
from tests.api.conftest import API, ApiContext, problem_of
from tests.helpers import OPENAI_PEER_KEY
from tests.peers import OpenAIPeer

WRITERS = 50


async def add_provider(http: httpx.AsyncClient, peer: OpenAIPeer) -> str:
    response = await http.post(
        f"{API}/providers",
        params={"validate": "true"},
        json={"name": "peer", "provider_type": "openai", "api_base_url": peer.base_url, "api_key": OPENAI_PEER_KEY},
    )
    assert response.status_code == 201, response.text
    provider_id: str = response.json()["id"]
    return provider_id


async def all_at_once(
    http: httpx.AsyncClient, method: str, url: str, bodies: list[dict[str, Any]]
) -> list[httpx.Response]:
    return await asyncio.gather(*(http.request(method, url, json=body) for body in bodies))


def statuses(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(response.status_code for response in responses)


def audit_of(api: ApiContext, target_id: str) -> list[str]:
    """Actions recorded for ``target_id``, oldest first."""
    return [e.action for e in reversed(api.service.audit.entries(limit=500)) if e.target_id == target_id]


async def test_concurrent_updates_of_the_same_version_have_exactly_one_winner(
    api: ApiContext, live_server: str, openai_peer: OpenAIPeer
) -> None:
    async with httpx.AsyncClient(base_url=live_server, headers=api.admin, timeout=60) as http:
        provider_id = await add_provider(http, openai_peer)
        first = await http.put(
            f"{API}/config/reasoning", json={"provider_id": provider_id, "model_name": "gpt-4o", "temperature": 0.0}
        )
        assert first.status_code == 200 and first.json()["version"] == 1
        bodies = [
            {"provider_id": provider_id, "model_name": "gpt-4o", "temperature": round(0.02 * (i + 1), 2), "version": 1}
            for i in range(WRITERS)
        ]

        responses = await all_at_once(http, "PUT", f"{API}/config/reasoning", bodies)

        assert statuses(responses) == {200: 1, 409: WRITERS - 1}, [r.text for r in responses if r.status_code >= 500]
        winner = next(r.json() for r in responses if r.status_code == 200)
        assert winner["version"] == 2
        for loser in (r for r in responses if r.status_code == 409):
            assert "changed by someone else" in problem_of(loser)["detail"]
        stored = (await http.get(f"{API}/config/reasoning")).json()
    assert stored["temperature"] == winner["temperature"] and stored["version"] == 2
    assert audit_of(api, "reasoning") == ["config.create", "config.update"]


async def test_concurrent_creations_of_the_same_config_entry_have_exactly_one_winner(
    api: ApiContext, live_server: str, openai_peer: OpenAIPeer
) -> None:
    async with httpx.AsyncClient(base_url=live_server, headers=api.admin, timeout=60) as http:
        provider_id = await add_provider(http, openai_peer)
        # version 0: "create it; it must not exist yet".
        bodies = [
            {"provider_id": provider_id, "model_name": "gpt-4o-mini", "max_tokens": 100 + i, "version": 0}
            for i in range(WRITERS)
        ]

        responses = await all_at_once(http, "PUT", f"{API}/config/tools", bodies)

        assert statuses(responses) == {200: 1, 409: WRITERS - 1}, [r.text for r in responses if r.status_code >= 500]
        winner = next(r.json() for r in responses if r.status_code == 200)
        stored = (await http.get(f"{API}/config/tools")).json()
    assert stored["max_tokens"] == winner["max_tokens"] and stored["version"] == 1
    assert audit_of(api, "tools") == ["config.create"]


async def test_concurrent_creations_of_the_same_interaction_type_have_exactly_one_winner(
    api: ApiContext, live_server: str
) -> None:
    async with httpx.AsyncClient(base_url=live_server, headers=api.admin, timeout=60) as http:
        bodies = [{"name": "summaries", "kind": "chat", "description": f"writer {i}"} for i in range(WRITERS)]

        responses = await all_at_once(http, "POST", f"{API}/interaction-types", bodies)

        assert statuses(responses) == {201: 1, 409: WRITERS - 1}, [r.text for r in responses if r.status_code >= 500]
        for loser in (r for r in responses if r.status_code == 409):
            assert "'summaries' already exists" in problem_of(loser)["detail"]
        winner = next(r.json() for r in responses if r.status_code == 201)
        listed = [t for t in (await http.get(f"{API}/interaction-types")).json() if t["name"] == "summaries"]
    assert listed == [winner]
    assert audit_of(api, "summaries") == ["interaction_type.create"]


# ---------------------------------------------------------------------------------------- races forced with locks
#
# Two writers that each check a rule (unique name, provider not in use) before writing can both pass the
# check when neither sees the other's uncommitted row. Here the test is the first writer: it makes its
# change, leaves it uncommitted, lets the request run into it, and commits. The request must still end
# in a 409, never a 5xx. On SQLite the request queues for the write lock and then sees the change.


race_backends = pytest.mark.parametrize(
    "migrated_database_url",
    [
        pytest.param("sqlite", id="sqlite"),
        pytest.param(
            "postgresql",
            id="postgresql",
            marks=[pytest.mark.postgres],
        ),
    ],
    indirect=True,
)


@pytest.fixture
def admin_client(api: ApiContext, live_server: str) -> Iterator[httpx.Client]:
    """A synchronous admin client of the live server."""
    with httpx.Client(base_url=live_server, headers=api.admin, timeout=60) as client:
        yield client


def add_custom_provider(client: httpx.Client, name: str, peer: OpenAIPeer) -> str:
    response = client.post(
        f"{API}/providers", json={"name": name, "provider_type": "custom", "api_base_url": peer.base_url}
    )
    assert response.status_code == 201, response.text
    provider_id: str = response.json()["id"]
    return provider_id


def wait_until_blocked(api: ApiContext, request: Future[httpx.Response]) -> None:
    """Return once ``request`` waits for a lock held by the test (PostgreSQL), or after a pause (SQLite)."""
    if api.service.engine.dialect.name == "sqlite":
        time.sleep(0.5)
        return
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + 15
    with api.service.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        while not request.done():
            if connection.execute(query).scalar():
                return
            assert time.monotonic() < deadline, "the request neither finished nor waited for the test's change"
            time.sleep(0.02)


def race(api: ApiContext, change: Callable[[Session], None], send: Callable[[], httpx.Response]) -> httpx.Response:
    """Send a request while ``change`` is written but not committed; commit once the request waits for it."""
    with Session(api.service.engine) as session, ThreadPoolExecutor(max_workers=1) as pool:
        change(session)
        session.flush()
        request = pool.submit(send)
        wait_until_blocked(api, request)
        session.commit()
        return request.result(timeout=60)


@race_backends
def test_renaming_onto_a_name_taken_meanwhile_is_409(
    api: ApiContext, admin_client: httpx.Client, openai_peer: OpenAIPeer
) -> None:
    first = add_custom_provider(admin_client, "first", openai_peer)
    second = add_custom_provider(admin_client, "second", openai_peer)

    def rename_first(session: Session) -> None:
        provider = session.get(Provider, first)
        assert provider is not None
        provider.name = "wanted"

    response = race(
        api,
        rename_first,
        lambda: admin_client.patch(f"{API}/providers/{second}", json={"name": "wanted"}),
    )

    assert response.status_code == 409, response.text
    assert "already exists" in problem_of(response)["detail"]
    assert sorted(p.name for p in api.service.providers.list()) == ["second", "wanted"]


@race_backends
def test_deleting_a_provider_that_became_used_meanwhile_is_409(
    api: ApiContext, admin_client: httpx.Client, openai_peer: OpenAIPeer
) -> None:
    provider_id = add_custom_provider(admin_client, "peer", openai_peer)

    def configure_reasoning(session: Session) -> None:
        session.add(GlobalConfig(interaction_type="reasoning", provider_id=provider_id, model_name="gpt-4o"))

    response = race(
        api,
        configure_reasoning,
        lambda: admin_client.delete(f"{API}/providers/{provider_id}"),
    )

    assert response.status_code == 409, response.text
    assert "reasoning" in problem_of(response)["detail"]
    assert api.service.providers.get(provider_id).name == "peer"


@race_backends
def test_deleting_a_provider_edited_meanwhile_is_not_a_server_error(
    api: ApiContext, admin_client: httpx.Client, openai_peer: OpenAIPeer
) -> None:
    provider_id = add_custom_provider(admin_client, "peer", openai_peer)

    def disable(session: Session) -> None:
        provider = session.get(Provider, provider_id)
        assert provider is not None
        provider.enabled = False

    response = race(api, disable, lambda: admin_client.delete(f"{API}/providers/{provider_id}"))

    assert response.status_code in (204, 409), response.text


@race_backends
def test_deleting_an_interaction_type_configured_meanwhile_is_409(
    api: ApiContext, admin_client: httpx.Client, openai_peer: OpenAIPeer
) -> None:
    provider_id = add_custom_provider(admin_client, "peer", openai_peer)
    created = admin_client.post(f"{API}/interaction-types", json={"name": "notes", "kind": "chat"})
    assert created.status_code == 201

    def configure_notes(session: Session) -> None:
        session.add(GlobalConfig(interaction_type="notes", provider_id=provider_id, model_name="gpt-4o"))

    response = race(api, configure_notes, lambda: admin_client.delete(f"{API}/interaction-types/notes"))

    assert response.status_code == 409, response.text
    assert "still configured" in problem_of(response)["detail"]


@race_backends
def test_deleting_an_override_deleted_meanwhile_is_404(
    api: ApiContext, admin_client: httpx.Client, openai_peer: OpenAIPeer
) -> None:
    provider_id = add_custom_provider(admin_client, "peer", openai_peer)
    url = f"{API}/users/u-1/config/reasoning"
    put = admin_client.put(url, json={"provider_id": provider_id, "model_name": "gpt-4o"})
    assert put.status_code == 200, put.text

    def delete_override(session: Session) -> None:
        session.execute(delete(UserConfig).where(UserConfig.user_id == "u-1"))

    response = race(api, delete_override, lambda: admin_client.delete(url))

    assert response.status_code == 404, response.text
    assert "has no override" in problem_of(response)["detail"]
