"""The endpoints of client-mode processes: resolve, the revision, the change stream, usage events."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from pydantic import SecretStr

from llmconfig import LLMConfigService
from llmconfig.api import create_app
from llmconfig.config import ConfigUpdate, FallbackTarget
from llmconfig.providers import ProviderCreate
from llmconfig.settings import Settings
from tests.api.conftest import API, ApiContext, problem_of, sample
from tests.helpers import ANTHROPIC_PEER_KEY, OPENAI_PEER_KEY, add_peer_providers, free_tcp_port
from tests.peers import AnthropicPeer, OpenAIPeer


@pytest.fixture
def configured(api: ApiContext, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer) -> ApiContext:
    service = api.service
    add_peer_providers(service, openai_peer, anthropic_peer)
    service.config.set_global(
        "reasoning",
        ConfigUpdate(
            provider_id="local",
            model_name="gpt-4o",
            temperature=0.3,
            fallbacks=[FallbackTarget(provider_id="claude", model_name="claude-haiku-4-5")],
        ),
        actor="t",
    )
    service.config.set_override(
        "u-42", "reasoning", ConfigUpdate(provider_id="local", model_name="gpt-4o-mini"), actor="t"
    )
    return api


def token(api: ApiContext, role: str, types: list[str] | None = None) -> dict[str, str]:
    made, _ = api.service.tokens.create(role=role, name=f"{role}-{types}", interaction_types=types)  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {made}"}


# ------------------------------------------------------------------------------------------------ resolve


def test_resolve_gives_a_client_every_target_with_its_key(client: TestClient, configured: ApiContext) -> None:
    agent = token(configured, "client")
    body = client.get(f"{API}/resolve/reasoning", headers=agent).json()
    assert (body["interaction_type"], body["kind"], body["source"], body["temperature"]) == (
        "reasoning",
        "chat",
        "global",
        0.3,
    )
    assert body["revision"] == configured.service.resolver.revision()
    assert [(t["provider_name"], t["model_name"], t["api_key"]) for t in body["targets"]] == [
        ("local", "gpt-4o", OPENAI_PEER_KEY),
        ("claude", "claude-haiku-4-5", ANTHROPIC_PEER_KEY),
    ]
    override = client.get(f"{API}/resolve/reasoning", params={"user_id": "u-42"}, headers=agent).json()
    assert (override["source"], override["targets"][0]["model_name"]) == ("user", "gpt-4o-mini")


def test_resolve_is_refused_to_viewers_and_to_clients_limited_to_other_types(
    client: TestClient, configured: ApiContext
) -> None:
    viewer = client.get(f"{API}/resolve/reasoning", headers=configured.viewer)
    assert viewer.status_code == 403 and "client or admin" in problem_of(viewer)["detail"]
    assert OPENAI_PEER_KEY not in viewer.text
    limited = token(configured, "client", ["tools"])
    refused = client.get(f"{API}/resolve/reasoning", headers=limited)
    assert refused.status_code == 403 and "only the interaction types tools" in problem_of(refused)["detail"]
    assert client.get(f"{API}/resolve/reasoning", headers=configured.admin).status_code == 200


def test_an_unknown_type_and_a_type_with_nothing_configured_are_told_apart(
    client: TestClient, configured: ApiContext
) -> None:
    agent = token(configured, "client")
    unknown = client.get(f"{API}/resolve/dreaming", headers=agent)
    assert unknown.status_code == 404 and problem_of(unknown)["type"] == "about:blank"
    assert "known types" in problem_of(unknown)["detail"]
    nothing = client.get(f"{API}/resolve/planning", headers=agent)
    assert nothing.status_code == 404
    assert problem_of(nothing)["type"] == "urn:llmconfig:problem:not-configured"


def test_a_changed_entry_is_resolved_anew(client: TestClient, configured: ApiContext) -> None:
    agent = token(configured, "client")
    before = client.get(f"{API}/resolve/reasoning", headers=agent).json()
    configured.service.config.set_global(
        "reasoning", ConfigUpdate(provider_id="local", model_name="local-chat"), actor="t"
    )
    after = client.get(f"{API}/resolve/reasoning", headers=agent).json()
    assert after["targets"][0]["model_name"] == "local-chat" and after["revision"] > before["revision"]
    assert client.get(f"{API}/revision", headers=agent).json() == {"revision": after["revision"]}


# ------------------------------------------------------------------------------------------------ usage events


def event(**overrides: Any) -> dict[str, Any]:
    return {
        "at": datetime.now(UTC).isoformat(),
        "interaction_type": "reasoning",
        "user_id": "u-7",
        "provider_id": None,
        "provider_name": "local",
        "model_name": "gpt-4o",
        "prompt_tokens": 11,
        "completion_tokens": 5,
        "latency_ms": 12.5,
        "success": True,
        "error_class": None,
        **overrides,
    }


def test_usage_events_from_clients_are_recorded(client: TestClient, configured: ApiContext) -> None:
    agent = token(configured, "client")
    posted = client.post(
        f"{API}/usage/events", json={"events": [event(), event(success=False, error_class="X")]}, headers=agent
    )
    assert posted.status_code == 202 and posted.json() == {"accepted": 2}
    assert configured.service.usage_recorder.flush()
    report = configured.service.usage.report(group_by=["user"])
    (group,) = [g for g in report.groups if g.key == "u-7"]
    assert (group.calls, group.errors, group.prompt_tokens) == (2, 1, 22)


def test_usage_events_outside_the_tokens_types_or_malformed_change_nothing(
    client: TestClient, configured: ApiContext
) -> None:
    limited = token(configured, "client", ["tools"])
    refused = client.post(
        f"{API}/usage/events", json={"events": [event(interaction_type="tools"), event()]}, headers=limited
    )
    assert refused.status_code == 403
    malformed = client.post(
        f"{API}/usage/events", json={"events": [event(prompt_tokens=-1)]}, headers=token(configured, "client")
    )
    assert malformed.status_code == 422 and "prompt_tokens" in problem_of(malformed)["detail"]
    assert client.post(f"{API}/usage/events", json={"events": []}, headers=configured.viewer).status_code == 403
    assert configured.service.usage_recorder.flush()
    assert configured.service.usage.report(group_by=["user"]).groups == []


# ------------------------------------------------------------------------------------------------ change stream


class Stream:
    """Reads a change stream on a thread; ``next()`` returns the next event (or comment) as a dict."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.items: queue.Queue[dict[str, str]] = queue.Queue()
        self._client = httpx.Client(timeout=httpx.Timeout(5, read=30))
        self._response = self._client.send(self._client.build_request("GET", url, headers=headers), stream=True)
        self.status = self._response.status_code
        self.headers = self._response.headers
        self.ended = threading.Event()  # the server ended the stream
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        current: dict[str, str] = {}
        try:
            for line in self._response.iter_lines():
                if line.startswith(":"):
                    self.items.put({"comment": line[1:].strip()})
                elif line:
                    field, _, value = line.partition(": ")
                    current[field] = value
                elif current:
                    self.items.put(current)
                    current = {}
            self.ended.set()
        except httpx.HTTPError:
            pass

    def next(self, timeout: float = 10, *, skip_comments: bool = True) -> dict[str, str]:
        """The next event; with ``skip_comments=False`` also comments and field blocks without an event."""
        deadline = time.monotonic() + timeout
        while True:
            item = self.items.get(timeout=max(0.01, deadline - time.monotonic()))
            if not skip_comments or "event" in item:
                return item

    def close(self) -> None:
        self._response.close()
        self._client.close()


@pytest.fixture
def stream_server(
    migrated_database_url: str, settings_factory: Callable[..., Settings], openai_peer: OpenAIPeer
) -> Iterator[tuple[str, LLMConfigService]]:
    """A real uvicorn serving the app with a short heartbeat; yields its URL and the service."""
    settings = settings_factory(database_url=migrated_database_url, stream_heartbeat=0.3, cache_ttl=0.2)
    with serving(settings, openai_peer) as served:
        yield served


@contextmanager
def serving(settings: Settings, openai_peer: OpenAIPeer) -> Iterator[tuple[str, LLMConfigService]]:
    """The app on a real uvicorn, with the provider ``local`` (the OpenAI peer); its URL and the service."""
    service = LLMConfigService(settings)
    service.providers.add(
        ProviderCreate(
            name="local", provider_type="custom", api_base_url=openai_peer.base_url, api_key=SecretStr(OPENAI_PEER_KEY)
        )
    )
    port = free_tcp_port()
    config = uvicorn.Config(
        create_app(service.settings, service=service),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", service
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        service.close()


def set_reasoning(service: LLMConfigService, model: str) -> None:
    service.config.set_global("reasoning", ConfigUpdate(provider_id="local", model_name=model), actor="t")


def test_the_stream_carries_each_change_with_its_revision_and_keeps_idle_connections_alive(
    stream_server: tuple[str, LLMConfigService],
) -> None:
    url, service = stream_server
    made, _ = service.tokens.create(role="client", name="agents")
    stream = Stream(f"{url}{API}/changes", {"Authorization": f"Bearer {made}"})
    try:
        assert stream.status == 200 and stream.headers["content-type"].startswith("text/event-stream")
        opening = [stream.next(skip_comments=False), stream.next(skip_comments=False)]
        assert {"comment": "connected"} in opening and {"retry": "1000"} in opening  # reconnect after a second
        set_reasoning(service, "gpt-4o-mini")
        change = stream.next()
        assert change["event"] == "change"
        assert json.loads(change["data"]) == {"change": "config:reasoning", "revision": int(change["id"])}
        assert int(change["id"]) == service.resolver.revision()
        assert {"comment": "keep-alive"} in [stream.next(skip_comments=False) for _ in range(2)]
    finally:
        stream.close()


def test_a_client_that_reconnects_gets_what_it_missed_or_a_resync(stream_server: tuple[str, LLMConfigService]) -> None:
    url, service = stream_server
    made, _ = service.tokens.create(role="client", name="agents")
    headers = {"Authorization": f"Bearer {made}"}
    warm = Stream(f"{url}{API}/changes", headers)  # the server learns of changes while a client listens
    try:
        set_reasoning(service, "gpt-4o-mini")
        seen = int(warm.next()["id"])
        set_reasoning(service, "local-chat")
        set_reasoning(service, "gpt-4o")
        assert [warm.next()["id"] for _ in range(2)] == [str(seen + 1), str(seen + 2)]
    finally:
        warm.close()

    resumed = Stream(f"{url}{API}/changes", {**headers, "Last-Event-ID": str(seen)})
    try:
        replayed = [resumed.next(), resumed.next()]
        assert [(e["event"], e["id"]) for e in replayed] == [("change", str(seen + 1)), ("change", str(seen + 2))]
    finally:
        resumed.close()

    too_old = Stream(f"{url}{API}/changes", {**headers, "Last-Event-ID": "0"})
    try:
        first = too_old.next()
        assert (first["event"], first["id"]) == ("resync", str(seen + 2))
    finally:
        too_old.close()


def test_changes_made_by_another_process_reach_the_stream(
    stream_server: tuple[str, LLMConfigService], migrated_database_url: str, settings_factory: Callable[..., Settings]
) -> None:
    url, service = stream_server
    made, _ = service.tokens.create(role="client", name="agents")
    stream = Stream(f"{url}{API}/changes", {"Authorization": f"Bearer {made}"})
    # Another writer on the same database, as a CLI command or another replica would be.
    other = LLMConfigService(settings_factory(database_url=migrated_database_url))
    try:
        set_reasoning(other, "local-chat")
        received = stream.next()
        if migrated_database_url.startswith("postgresql"):
            # Pushed by LISTEN/NOTIFY, with what changed.
            assert received["event"] == "change" and json.loads(received["data"])["change"] == "config:reasoning"
        else:
            # SQLite cannot push: the revision poll finds it, and clients are told to drop what they resolved.
            assert received["event"] == "resync"
        assert int(received["id"]) == other.resolver.revision()
    finally:
        stream.close()
        other.close()


def test_the_stream_needs_a_client_or_admin_token(client: TestClient, configured: ApiContext) -> None:
    assert client.get(f"{API}/changes").status_code == 401
    viewer = client.get(f"{API}/changes", headers=configured.viewer)
    assert viewer.status_code == 403 and "client or admin" in problem_of(viewer)["detail"]


@pytest.mark.parametrize("garbage", ["abc", "-1", "1.5", ""])
def test_a_malformed_last_event_id_is_taken_as_none(stream_server: tuple[str, LLMConfigService], garbage: str) -> None:
    url, service = stream_server
    made, _ = service.tokens.create(role="client", name="agents")
    stream = Stream(f"{url}{API}/changes", {"Authorization": f"Bearer {made}", "Last-Event-ID": garbage})
    try:
        assert stream.status == 200
        set_reasoning(service, "gpt-4o-mini")
        assert stream.next()["event"] == "change"  # no resync: nothing is owed to a client that named nothing
    finally:
        stream.close()


def test_a_client_ahead_of_the_server_is_told_to_resync(stream_server: tuple[str, LLMConfigService]) -> None:
    # A revision this server has not reached: a database restored from a backup, or another installation.
    url, service = stream_server
    made, _ = service.tokens.create(role="client", name="agents")
    stream = Stream(f"{url}{API}/changes", {"Authorization": f"Bearer {made}", "Last-Event-ID": "9" * 40})
    try:
        assert stream.next()["event"] == "resync"
    finally:
        stream.close()


@pytest.fixture
def kept(
    migrated_database_url: str,
    settings_factory: Callable[..., Settings],
    openai_peer: OpenAIPeer,
    anthropic_peer: AnthropicPeer,
) -> Iterator[LLMConfigService]:
    """A service whose resolutions stay kept between requests (a TTL of a minute), configured like ``configured``."""
    service = LLMConfigService(settings_factory(database_url=migrated_database_url, cache_ttl=60))
    add_peer_providers(service, openai_peer, anthropic_peer)
    service.config.set_global("reasoning", ConfigUpdate(provider_id="local", model_name="gpt-4o"), actor="t")
    service.config.set_override(
        "u-42", "reasoning", ConfigUpdate(provider_id="local", model_name="gpt-4o-mini"), actor="t"
    )
    try:
        yield service
    finally:
        service.close()


def _bearer(service: LLMConfigService, role: str, types: list[str] | None = None) -> dict[str, str]:
    made, _ = service.tokens.create(role=role, name=f"{role}-{types}", interaction_types=types)  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {made}"}


def test_a_warm_resolve_answered_before_routing_checks_the_role_and_the_types_of_the_token(
    kept: LLMConfigService,
) -> None:
    agent = _bearer(kept, "client", ["reasoning"])
    with TestClient(create_app(service=kept)) as client:
        for query, model in (("", "gpt-4o"), ("?user_id=u-42", "gpt-4o-mini")):
            first = client.get(f"{API}/resolve/reasoning{query}", headers=agent)
            assert first.status_code == 200
            assert [t["model_name"] for t in first.json()["targets"]] == [model]
            assert kept.resolved_json("reasoning", "u-42" if query else None) == first.content  # kept now
            again = client.get(f"{API}/resolve/reasoning{query}", headers=agent)
            assert (again.status_code, again.content) == (200, first.content)
            limited = client.get(f"{API}/resolve/reasoning{query}", headers=_bearer(kept, "client", ["tools"]))
            assert limited.status_code == 403 and "tools" in problem_of(limited)["detail"]
            viewer = client.get(f"{API}/resolve/reasoning{query}", headers=_bearer(kept, "viewer"))
            assert viewer.status_code == 403
            revoked_token = _bearer(kept, "client")
            kept.tokens.revoke(kept.tokens.list()[-1].id)
            assert client.get(f"{API}/resolve/reasoning{query}", headers=revoked_token).status_code == 401


def test_the_resolve_payloads_a_change_dropped_are_resolved_again_before_the_change_is_relayed(
    kept: LLMConfigService,
) -> None:
    key = ("reasoning", None, None)
    kept.resolve("reasoning")
    kept.config.set_global("reasoning", ConfigUpdate(provider_id="local", model_name="gpt-4o-mini"), actor="t")
    payloads = kept.payloads
    assert payloads.cached(key) is None and payloads.refill_due
    payloads.refill()
    assert not payloads.refill_due
    refilled = payloads.cached(key)
    assert refilled is not None and [t.model_name for t in refilled.all_targets()] == ["gpt-4o-mini"]
    # What /resolve answers now is that payload, serialised once.
    body = kept.resolved_json("reasoning")
    assert body is not None and [t["model_name"] for t in json.loads(body)["targets"]] == ["gpt-4o-mini"]
    assert kept.resolved_json("reasoning") is body


@pytest.fixture
def pushing_server(
    migrated_database_url: str, settings_factory: Callable[..., Settings], openai_peer: OpenAIPeer
) -> Iterator[tuple[str, LLMConfigService]]:
    """:func:`stream_server` keeping what it read for a minute (resolutions, tokens), as a quiet production
    server would between changes."""
    settings = settings_factory(database_url=migrated_database_url, stream_heartbeat=0.3, cache_ttl=60)
    with serving(settings, openai_peer) as served:
        yield served


def test_a_change_carries_the_global_resolutions_it_dropped_to_the_tokens_that_cover_them(
    pushing_server: tuple[str, LLMConfigService],
) -> None:
    url, service = pushing_server
    set_reasoning(service, "gpt-4o")
    reasoning = _bearer(service, "client", ["reasoning"])
    reasoning_id = service.tokens.list()[-1].id
    tools = _bearer(service, "client", ["tools"])
    assert httpx.get(f"{url}{API}/resolve/reasoning", headers=reasoning).status_code == 200  # the server keeps it
    covering = Stream(f"{url}{API}/changes", reasoning)
    other = Stream(f"{url}{API}/changes", tools)
    try:
        set_reasoning(service, "gpt-4o-mini")
        change = covering.next()
        data = json.loads(change["data"])
        assert (data["change"], data["revision"]) == ("config:reasoning", int(change["id"]))
        pushed = data["resolved"]["reasoning"]
        assert [t["model_name"] for t in pushed["targets"]] == ["gpt-4o-mini"]
        assert pushed["revision"] >= data["revision"]
        assert pushed == httpx.get(f"{url}{API}/resolve/reasoning", headers=reasoning).json()  # what /resolve says
        # A token limited to other types is told of the change, and given nothing it could not resolve.
        assert json.loads(other.next()["data"]) == {"change": "config:reasoning", "revision": data["revision"]}

        service.tokens.revoke(reasoning_id)
        assert httpx.get(f"{url}{API}/resolve/reasoning", headers=reasoning).status_code == 401
        set_reasoning(service, "local-chat")
        # The revoked token's stream gets no resolution: it ends; the other one goes on.
        assert covering.ended.wait(10)
        assert all("resolved" not in item.get("data", "") for item in _drained(covering))
        after = [json.loads(other.next()["data"])["change"] for _ in range(2)]
        assert after == [f"token:{reasoning_id}", "config:reasoning"]
    finally:
        covering.close()
        other.close()


def _drained(stream: Stream) -> list[dict[str, str]]:
    items = []
    while not stream.items.empty():
        items.append(stream.items.get_nowait())
    return items


def test_a_client_mode_process_takes_a_change_from_the_event_without_asking_resolve_again(
    pushing_server: tuple[str, LLMConfigService], settings_factory: Callable[..., Settings]
) -> None:
    url, service = pushing_server
    set_reasoning(service, "gpt-4o")
    made, _ = service.tokens.create(role="client", name="agents")
    agent = LLMConfigService(settings_factory(server_url=url, token=SecretStr(made), cache_ttl=60))
    resolves = f"{API}/resolve/{{interaction_type}}"
    try:
        assert agent.get_llm("reasoning").model_name == "gpt-4o"  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10
        while not agent.changes_pushed:  # its change stream is connected
            assert time.monotonic() < deadline, "the agent's change stream did not connect"
            time.sleep(0.02)
        asked = sample(httpx.get(f"{url}/metrics").text, "GET", resolves, "200")
        set_reasoning(service, "gpt-4o-mini")
        while agent.get_llm("reasoning").model_name != "gpt-4o-mini":  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "the change did not reach the agent"
            time.sleep(0.01)
        assert sample(httpx.get(f"{url}/metrics").text, "GET", resolves, "200") == asked
        # invalidate() forgets what an event carried too: the next call asks the server.
        set_reasoning(service, "local-chat")
        while agent.cache.cached(("reasoning", None, "chat")) is not None:  # the event has landed
            assert time.monotonic() < deadline, "the change did not reach the agent"
            time.sleep(0.01)
        agent.invalidate()
        assert agent.get_llm("reasoning").model_name == "local-chat"  # type: ignore[attr-defined]
        assert sample(httpx.get(f"{url}/metrics").text, "GET", resolves, "200") == asked + 1
        # What an event carries nothing for (a user's resolution) is asked for.
        service.config.set_override(
            "u-42", "reasoning", ConfigUpdate(provider_id="local", model_name="gpt-4o"), actor="t"
        )
        assert agent.get_llm("reasoning", user_id="u-42").model_name == "gpt-4o"  # type: ignore[attr-defined]
        assert sample(httpx.get(f"{url}/metrics").text, "GET", resolves, "200") == asked + 2
    finally:
        agent.close()
