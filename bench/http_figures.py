"""Figures against running ``llmconfig serve`` replicas: GET /config throughput, /config/validate timeout."""

from __future__ import annotations

import asyncio
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench.common import PROVIDER_KEY, Row, fmt_seconds, percentile, settings_for
from bench.postgres import BenchError
from bench.procs import Processes, start_server


async def _load(urls: list[str], token: str, *, concurrency: int, duration: float, warmup: float) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    clients = [httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) for url in urls]
    latencies: list[float] = []
    errors = 0
    measuring = False
    stop = False

    async def worker(index: int) -> None:
        nonlocal errors
        client = clients[index % len(clients)]
        while not stop:
            started = time.perf_counter()
            try:
                response = await client.get("/api/v1/llm/config")
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            if measuring:
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

    try:
        tasks = [asyncio.create_task(worker(i)) for i in range(concurrency)]
        await asyncio.sleep(warmup)
        measuring = True
        began = time.perf_counter()
        await asyncio.sleep(duration)
        measuring = False
        elapsed = time.perf_counter() - began
        stop = True
        await asyncio.gather(*tasks)
    finally:
        for client in clients:
            await client.aclose()
    return {"latencies": latencies, "errors": errors, "elapsed": elapsed}


def sequential_latency(url: str, token: str, requests: int = 100) -> float:
    """Median latency of ``GET /api/v1/llm/config`` from one client, one request at a time."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        samples = []
        for _ in range(requests + 10):
            started = time.perf_counter()
            client.get("/api/v1/llm/config").raise_for_status()
            samples.append(time.perf_counter() - started)
    return percentile(samples[10:], 50)


def config_throughput(urls: list[str], token: str, *, label: str, concurrency: int = 32, duration: float = 5.0) -> Row:
    """Figure 4: ``GET /api/v1/llm/config`` at ``concurrency`` clients, split evenly across ``urls``."""
    single = sequential_latency(urls[0], token)
    result = asyncio.run(_load(urls, token, concurrency=concurrency, duration=duration, warmup=1.0))
    latencies = result["latencies"]
    throughput = len(latencies) / result["elapsed"]
    row = Row(
        f"4. `GET /config` at {concurrency} clients, {label}: throughput / p99",
        f"{throughput:.0f} req/s / {fmt_seconds(percentile(latencies, 99))}",
    )
    row.details.append(
        f"{len(latencies)} answers in {result['elapsed']:.1f} s after 1 s warm-up, {result['errors']} errors; "
        f"p50 {fmt_seconds(percentile(latencies, 50))}; load generator (httpx.AsyncClient, one process) "
        "shares the machine's cores with the replicas and PostgreSQL; one client, one request at a time: "
        f"median {fmt_seconds(single)}"
    )
    return row


def validate_timeout(
    procs: Processes,
    workdir: Path,
    *,
    database_url: str,
    master_key: str,
    env: dict[str, str],
    admin_token: str,
    label: str,
    runs: int = 2,
    timeout: float = 2.0,
) -> Row:
    """Figure 6: ``GET /config/validate`` with 10 providers, one of which accepts and never answers."""
    from pydantic import SecretStr
    from tests.peers import OpenAIPeer

    from llmconfig import LLMConfigService
    from llmconfig.config import ConfigUpdate, InteractionTypeCreate
    from llmconfig.db import upgrade_to_head
    from llmconfig.providers.schemas import ProviderCreate

    with ExitStack() as stack:
        peers = []
        for index in range(10):
            peer = stack.enter_context(OpenAIPeer(api_key=PROVIDER_KEY, models=("gpt-4o",), name=f"peer-{index}"))
            peers.append(peer)
        hanging = peers[-1]
        hanging.behaviour = "hang"
        hanging.hang_seconds = 120

        svc = LLMConfigService(settings_for(database_url, master_key, workdir))
        try:
            upgrade_to_head(svc.engine)
            for index, peer in enumerate(peers):
                provider, _ = svc.providers.add(
                    ProviderCreate(
                        name=f"p{index}",
                        provider_type="custom",
                        api_base_url=peer.base_url,
                        api_key=SecretStr(PROVIDER_KEY),
                    ),
                    actor="bench",
                    validate=False,
                )
                svc.types.add(InteractionTypeCreate(name=f"bench-{index}", kind="chat"), actor="bench")
                svc.config.set_global(
                    f"bench-{index}", ConfigUpdate(provider_id=provider.id, model_name="gpt-4o"), actor="bench"
                )
        finally:
            svc.close()

        server = start_server(
            procs, workdir, name=f"validate-{label.lower()}", env={**env, "LLMCONFIG_REQUEST_TIMEOUT": str(timeout)}
        )
        try:
            elapsed: list[float] = []
            statuses: dict[str, int] = {}
            with httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=120
            ) as client:
                for _ in range(runs):
                    started = time.perf_counter()
                    response = client.get("/api/v1/llm/config/validate")
                    elapsed.append(time.perf_counter() - started)
                    if response.status_code != 200:
                        raise BenchError(f"GET /config/validate answered {response.status_code}: {response.text}")
                    results = response.json()["results"]
                    statuses = {}
                    for check in results.values():
                        statuses[check["status"]] = statuses.get(check["status"], 0) + 1
                # The same request with every provider answering: what validation costs besides the wait.
                hanging.behaviour = "ok"
                started = time.perf_counter()
                response = client.get("/api/v1/llm/config/validate")
                all_answering = time.perf_counter() - started
                if response.status_code != 200 or not response.json()["ok"]:
                    raise BenchError(f"GET /config/validate with all providers up: {response.text}")
        finally:
            procs.stop(server.process)

    worst = max(elapsed)
    ratio = worst / timeout
    expected = {"ok": 9, "timeout": 1}
    row = Row(
        f"6. `GET /config/validate`, 10 providers, 1 never answers ({label}): elapsed ÷ timeout",
        f"{ratio:.2f} ({worst:.2f} s ÷ {timeout:g} s)",
        "≤ 1.2",
        ratio <= 1.2 and statuses == expected,
    )
    row.details.append(
        f"worst of {runs} runs (all: {', '.join(f'{e:.2f} s' for e in elapsed)}), "
        f"LLMCONFIG_REQUEST_TIMEOUT={timeout:g}; "
        f"statuses {statuses}"
        + ("" if statuses == expected else f" (**expected {expected}**)")
        + f"; the same request with all 10 providers answering: {all_answering:.2f} s"
    )
    return row
