"""Figures against running ``llmconfig serve``: GET /config against a bare app, PUT round trips, /config/validate."""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench import wrk
from bench.common import PROVIDER_KEY, Row, fmt_seconds, median, percentile, settings_for
from bench.postgres import BenchError
from bench.procs import Processes, start_bare_app, start_server

CONFIG = "/api/v1/llm/config"


def _median_load(loads: list[wrk.Load]) -> tuple[float, float]:
    """Median throughput and median p99 over several runs: one disturbed run does not decide the figure."""
    return median([load.throughput for load in loads]), median([load.p99 for load in loads])


def _runs(loads: list[wrk.Load]) -> str:
    return ", ".join(f"{load.throughput:,.0f} req/s p99 {fmt_seconds(load.p99)}" for load in loads)


def config_against_bare(
    procs: Processes,
    workdir: Path,
    server_url: str,
    token: str,
    *,
    label: str,
    connections: int = 32,
    rounds: int = 5,
    seconds: float = 3.0,
) -> list[Row]:
    """Figure 4: ``GET /config`` through llmconfig and through a bare Starlette app with the same bytes.

    Both run on the same server stack (bench.bare_app) and are loaded by the same generator (wrk), in
    alternating runs so that both see the same machine; the ratios are of the medians over the runs.
    """
    headers = {"Authorization": f"Bearer {token}"}
    body = httpx.get(f"{server_url}{CONFIG}", headers=headers, timeout=30).content
    body_file = workdir / "bare-config.json"
    body_file.write_bytes(body)
    bare = start_bare_app(procs, workdir, body=body_file)
    try:
        if httpx.get(f"{bare.url}{CONFIG}", timeout=30).content != body:
            raise BenchError("the bare app does not answer the same bytes as llmconfig")
        targets = {"llmconfig": f"{server_url}{CONFIG}", "bare": f"{bare.url}{CONFIG}"}
        for url in targets.values():
            wrk.run(url, token, workdir, connections=connections, seconds=1)  # warm-up
        loads: dict[str, list[wrk.Load]] = {name: [] for name in targets}
        for number in range(rounds):
            for name in sorted(targets, reverse=number % 2 == 1):
                loads[name].append(wrk.run(targets[name], token, workdir, connections=connections, seconds=seconds))
    finally:
        procs.stop(bare.process)
    errors = {name: sum(load.errors for load in runs) for name, runs in loads.items()}
    if errors["llmconfig"] or errors["bare"]:
        raise BenchError(f"errors under load: {errors}")
    ours, ours_p99 = _median_load(loads["llmconfig"])
    theirs, theirs_p99 = _median_load(loads["bare"])
    throughput_ratio, p99_ratio = ours / theirs, ours_p99 / theirs_p99
    how = (
        f"{rounds} alternating runs of {seconds:g} s each (after a 1 s warm-up), {connections} connections, one wrk "
        f"thread on the same machine; {len(body):,} bytes per answer; llmconfig: {_runs(loads['llmconfig'])}; "
        f"bare Starlette: {_runs(loads['bare'])}"
    )
    throughput = Row(
        f"4. `GET /config` at {connections} connections ÷ bare Starlette, same stack ({label}): throughput",
        f"{throughput_ratio:.2f} ({ours:,.0f} vs {theirs:,.0f} req/s)",
        "≥ 0.5",
        throughput_ratio >= 0.5,
        [how, "both on uvicorn with uvloop and httptools, one worker, access log on (`llmconfig serve`'s options)"],
    )
    p99 = Row(
        f"4. `GET /config` at {connections} connections ÷ bare Starlette, same stack ({label}): p99",
        f"{p99_ratio:.2f} ({fmt_seconds(ours_p99)} vs {fmt_seconds(theirs_p99)})",
        "≤ 2",
        p99_ratio <= 2,
        [
            f"medians of the runs' p99; p50 {fmt_seconds(median([x.p50 for x in loads['llmconfig']]))} vs "
            f"{fmt_seconds(median([x.p50 for x in loads['bare']]))}"
        ],
    )
    return [throughput, p99]


def config_on_workers(
    server_url: str, token: str, workdir: Path, *, workers: int, label: str, connections: int = 32, rounds: int = 3
) -> Row:
    """Figure 4: ``GET /config`` against ``llmconfig serve`` with ``workers`` worker processes."""
    url = f"{server_url}{CONFIG}"
    wrk.run(url, token, workdir, connections=connections, seconds=1)  # warm-up: every worker's snapshot
    loads = [wrk.run(url, token, workdir, connections=connections, seconds=3) for _ in range(rounds)]
    if any(load.errors for load in loads):
        raise BenchError(f"errors under load: {[load.errors for load in loads]}")
    throughput, p99 = _median_load(loads)
    return Row(
        f"4. `GET /config` at {connections} connections, {workers} workers ({label}): throughput / p99",
        f"{throughput:,.0f} req/s / {fmt_seconds(p99)}",
        details=[
            f"LLMCONFIG_WORKERS={workers}; medians of {rounds} runs of 3 s: {_runs(loads)}; the load generator and "
            "PostgreSQL share the machine's cores with the workers"
        ],
    )


def put_round_trip(
    server_url: str, token: str, provider_id: str, database_url: str, master_key: str, workdir: Path, *, label: str
) -> Row:
    """``PUT /config/reasoning`` through a running server, and where a write's time goes inside the process."""
    from llmconfig import LLMConfigService

    samples: list[float] = []
    with httpx.Client(base_url=server_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        for number in range(230):
            model = MODELS[number % 2]
            started = time.perf_counter()
            response = client.put(f"{CONFIG}/reasoning", json={"provider_id": provider_id, "model_name": model})
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                raise BenchError(f"PUT /config/reasoning answered {response.status_code}: {response.text}")
            if number >= 30:
                samples.append(elapsed)
    svc = LLMConfigService(settings_for(database_url, master_key, workdir))
    try:
        breakdown = write_breakdown(svc, provider_id)
    finally:
        svc.close()
    row = Row(
        f"3. `PUT /config` round trip p50 ({label})",
        f"{fmt_seconds(percentile(samples, 50))} (p90 {fmt_seconds(percentile(samples, 90))})",
    )
    row.details.append(
        f"{len(samples)} sequential PUTs through `llmconfig serve`, one connection, alternating the model; "
        f"the same write in-process (`EntryService.set_global`): {breakdown}; the rest of the round trip is the "
        "HTTP exchange, FastAPI (routing, body validation, authentication) and the trip to a worker thread"
    )
    return row


MODELS = ("model-a", "model-b")


def write_breakdown(svc: Any, provider_id: str, writes: int = 200) -> str:
    """Where one configuration write's time goes: statements, commit, and the rest (SQLAlchemy, pydantic)."""
    from sqlalchemy import event

    from llmconfig.config import ConfigUpdate

    def write(number: int) -> None:
        update = ConfigUpdate(provider_id=provider_id, model_name=MODELS[number % 2])
        svc.config.set_global("reasoning", update, actor="bench")

    for number in range(20):
        write(number)
    spent = {"statements": 0.0, "commit": 0.0}
    counted = {"statements": 0}
    started_at: list[float] = []

    def before(*_args: Any) -> None:
        started_at.append(time.perf_counter())

    def after(*_args: Any) -> None:
        spent["statements"] += time.perf_counter() - started_at.pop()
        counted["statements"] += 1

    def commit_started(*_args: Any) -> None:
        started_at.append(time.perf_counter())

    def committed(*_args: Any) -> None:
        spent["commit"] += time.perf_counter() - started_at.pop()

    # The engine's commit event fires before the database commits, the session's after_commit once it has.
    hooks: list[tuple[Any, str, Any]] = [
        (svc.engine, "before_cursor_execute", before),
        (svc.engine, "after_cursor_execute", after),
        (svc.engine, "commit", commit_started),
        (svc.sessions, "after_commit", committed),
    ]
    for target, name, hook in hooks:
        event.listen(target, name, hook)
    samples: list[float] = []
    began = time.perf_counter()
    try:
        for number in range(writes):
            started = time.perf_counter()
            write(number)
            samples.append(time.perf_counter() - started)
    finally:
        for target, name, hook in hooks:
            event.remove(target, name, hook)
    total = time.perf_counter() - began
    per = {name: value / writes for name, value in spent.items()}
    rest = total / writes - per["statements"] - per["commit"]
    return (
        f"p50 {fmt_seconds(percentile(samples, 50))}; per write {counted['statements'] / writes:.0f} statements "
        f"taking {fmt_seconds(per['statements'])} together, the commit {fmt_seconds(per['commit'])}, and "
        f"{fmt_seconds(rest)} in SQLAlchemy and pydantic around them (means)"
    )


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
