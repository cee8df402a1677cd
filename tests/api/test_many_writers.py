"""100 concurrent clients against a real uvicorn server, on SQLite and PostgreSQL.

Most write something of their own (a user override, a custom interaction type, a provider); the rest
race to update the same config entry from the same version. Whatever the interleaving: no 5xx, every
distinct write lands exactly once, exactly one of the contended writes wins and the others get 409, and
the audit trail has one entry per successful write.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx

from tests.api.conftest import API, ApiContext, problem_of
from tests.peers import OpenAIPeer

OVERRIDES = 30
TYPES = 20
PROVIDERS = 20
CONTENDED = 30
KEY_PREFIX = "sk-many-writers-"


async def test_a_hundred_concurrent_writers(api: ApiContext, live_server: str, openai_peer: OpenAIPeer) -> None:
    limits = httpx.Limits(max_connections=OVERRIDES + TYPES + PROVIDERS + CONTENDED)
    async with httpx.AsyncClient(base_url=live_server, headers=api.admin, timeout=180, limits=limits) as http:
        created = await http.post(
            f"{API}/providers",
            json={"name": "shared", "provider_type": "custom", "api_base_url": openai_peer.base_url},
        )
        assert created.status_code == 201, created.text
        shared = created.json()["id"]
        first = await http.put(f"{API}/config/tools", json={"provider_id": shared, "model_name": "gpt-4o"})
        assert first.status_code == 200 and first.json()["version"] == 1, first.text
        audit_before = len(api.service.audit.entries(limit=1000))

        requests: list[tuple[str, str, str, dict[str, Any]]] = []
        for i in range(OVERRIDES):
            body = {"provider_id": shared, "model_name": "gpt-4o-mini", "max_tokens": 100 + i}
            requests.append(("override", "PUT", f"{API}/users/user-{i}/config/reasoning", body))
        for i in range(TYPES):
            requests.append(("type", "POST", f"{API}/interaction-types", {"name": f"kind-{i}", "kind": "chat"}))
        for i in range(PROVIDERS):
            body = {
                "name": f"provider-{i}",
                "provider_type": "custom",
                "api_base_url": openai_peer.base_url,
                "api_key": f"{KEY_PREFIX}{i:04d}-0123456789",
            }
            requests.append(("provider", "POST", f"{API}/providers", body))
        for i in range(CONTENDED):
            body = {
                "provider_id": shared,
                "model_name": "gpt-4o",
                "temperature": round(0.05 * (i + 1), 2),
                "version": 1,
            }
            requests.append(("contended", "PUT", f"{API}/config/tools", body))
        assert len(requests) == 100

        responses = await asyncio.gather(*(http.request(method, url, json=body) for _, method, url, body in requests))

        by_kind: dict[str, Counter[int]] = {}
        for (kind, *_), response in zip(requests, responses, strict=True):
            by_kind.setdefault(kind, Counter())[response.status_code] += 1
            assert response.status_code < 500, response.text
        assert by_kind == {
            "override": Counter({200: OVERRIDES}),
            "type": Counter({201: TYPES}),
            "provider": Counter({201: PROVIDERS}),
            "contended": Counter({200: 1, 409: CONTENDED - 1}),
        }, [r.text for r in responses if r.status_code not in (200, 201)][:5]
        for response in responses:
            if response.status_code == 409:
                assert "changed by someone else" in problem_of(response)["detail"]
            assert KEY_PREFIX not in response.text
        winner = next(
            r.json()
            for (k, *_), r in zip(requests, responses, strict=True)
            if k == "contended" and r.status_code == 200
        )

        # Every distinct write is there exactly once.
        for i in range(OVERRIDES):
            effective = (await http.get(f"{API}/users/user-{i}/config")).json()["reasoning"]
            assert (effective["source"], effective["max_tokens"], effective["version"]) == ("user", 100 + i, 1)
        names = Counter(t["name"] for t in (await http.get(f"{API}/interaction-types")).json())
        assert all(names[f"kind-{i}"] == 1 for i in range(TYPES))
        providers = Counter(p["name"] for p in (await http.get(f"{API}/providers")).json())
        assert all(providers[f"provider-{i}"] == 1 for i in range(PROVIDERS))
        assert sum(providers.values()) == PROVIDERS + 1
        tools = (await http.get(f"{API}/config/tools")).json()
        assert (tools["version"], tools["temperature"]) == (2, winner["temperature"])

    # One audit entry per successful write, each for its own target.
    entries = api.service.audit.entries(limit=1000)
    new = entries[: len(entries) - audit_before]
    successes = sum(1 for r in responses if r.status_code in (200, 201))
    assert len(new) == successes == OVERRIDES + TYPES + PROVIDERS + 1
    actions = Counter(e.action for e in new)
    assert actions == {
        "override.create": OVERRIDES,
        "interaction_type.create": TYPES,
        "provider.create": PROVIDERS,
        "config.update": 1,
    }
    assert len({(e.target_type, e.target_id) for e in new}) == len(new)
