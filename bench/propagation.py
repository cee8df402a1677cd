"""Figure 3: a change made through replica A, observed by ``get_llm`` in four other library processes."""

from __future__ import annotations

import queue
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import Row, percentile, seed, settings_for
from bench.postgres import BenchError
from bench.procs import REPO, Processes, Server, clean_env, read_line

MODELS = ("model-a", "model-b")


def _reader(index: int, process: Any, sink: queue.Queue[tuple[int, float, str]]) -> None:
    for raw in process.stdout:
        parts = raw.decode(errors="replace").split()
        if len(parts) == 3 and parts[0] == "SEEN":
            sink.put((index, float(parts[1]), parts[2]))


def propagation(
    procs: Processes,
    workdir: Path,
    *,
    server: Server,
    env: dict[str, str],
    admin_token: str,
    provider_id: str,
    budget: float,
    max_changes: int = 200,
    pollers: int = 4,
    poll_interval: float = 0.001,
    pause: float = 0.0,
) -> tuple[list[float], int, list[float], int]:
    """Change ``reasoning`` through ``server`` up to ``max_changes`` times within ``budget`` seconds.

    Returns (observation latencies in s, changes made, PUT latencies in s, observations missed).
    Latency = the time a poller first sees the new model minus the time the PUT was sent (one clock:
    ``time.time()`` on this machine). The next change is made once every poller has seen the last one,
    after a random pause of up to ``pause`` seconds so that changes do not line up with the pollers'
    revision checks.
    """
    children = []
    sink: queue.Queue[tuple[int, float, str]] = queue.Queue()
    headers = {"Authorization": f"Bearer {admin_token}"}
    # Start from the first model whatever an earlier run of this figure left configured.
    reset = httpx.put(
        f"{server.url}/api/v1/llm/config/reasoning",
        json={"provider_id": provider_id, "model_name": MODELS[0]},
        headers=headers,
        timeout=30,
    )
    if reset.status_code != 200:
        raise BenchError(f"PUT /config/reasoning answered {reset.status_code}: {reset.text}")
    try:
        for _ in range(pollers):
            process = procs.start(
                [sys.executable, "-m", "bench.poller", "--interval", str(poll_interval)],
                env=env,
                cwd=workdir,
                stdout=subprocess.PIPE,
            )
            children.append(process)
        for process in children:
            line = read_line(process, timeout=120)
            if line != f"READY {MODELS[0]}":
                raise BenchError(f"poller answered {line!r}, expected 'READY {MODELS[0]}'")
        for index, process in enumerate(children):
            threading.Thread(target=_reader, args=(index, process, sink), daemon=True).start()

        latencies: list[float] = []
        put_times: list[float] = []
        missed = 0
        changes = 0
        current = MODELS[0]
        rng = random.Random(1234)
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            started = time.monotonic()
            while changes < max_changes and time.monotonic() - started < budget:
                new = MODELS[1] if current == MODELS[0] else MODELS[0]
                sent = time.time()
                response = client.put(
                    "/api/v1/llm/config/reasoning", json={"provider_id": provider_id, "model_name": new}
                )
                answered = time.time()
                if response.status_code != 200:
                    raise BenchError(f"PUT /config/reasoning answered {response.status_code}: {response.text}")
                put_times.append(answered - sent)
                changes += 1
                seen: dict[int, float] = {}
                deadline = time.monotonic() + 15
                while len(seen) < pollers and time.monotonic() < deadline:
                    try:
                        index, at, model = sink.get(timeout=max(0.01, deadline - time.monotonic()))
                    except queue.Empty:
                        break
                    if model == new and index not in seen:
                        seen[index] = at
                latencies.extend(at - sent for at in seen.values())
                if len(seen) < pollers:
                    missed += pollers - len(seen)
                    break  # a poller is stuck: later figures would be meaningless
                current = new
                if pause:
                    time.sleep(rng.uniform(0, pause))
        return latencies, changes, put_times, missed
    finally:
        for process in children:
            procs.stop(process)


def propagation_row(
    result: tuple[list[float], int, list[float], int],
    *,
    label: str,
    target: float | None,
    pollers: int,
    poll_interval: float,
    max_changes: int,
    budget: float,
    pause: float,
    processes: str = "library processes",
) -> Row:
    latencies, changes, put_times, missed = result
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    row = Row(
        f"3. propagation replica → {pollers} {processes}, p50 / p99 ({label})",
        f"{p50 * 1e3:.1f} ms / {p99 * 1e3:.1f} ms",
        f"p99 ≤ {target * 1e3:.0f} ms" if target is not None else "— (bounded by LLMCONFIG_CACHE_TTL = 1 s)",
        (p99 <= target and missed == 0) if target is not None else None,
    )
    fewer = (
        f" (fewer than {max_changes}: the {budget:.0f} s budget for this figure ran out)"
        if changes < max_changes
        else ""
    )
    row.details.append(
        f"{changes} changes{fewer}, {len(latencies)} observations by {pollers} processes polling every "
        f"{poll_interval * 1e3:g} ms; max {max(latencies, default=float('nan')) * 1e3:.1f} ms; "
        f"PUT round trip median {percentile(put_times, 50) * 1e3:.1f} ms; pause between changes up to "
        f"{pause * 1e3:.0f} ms" + (f"; **{missed} observations missed (15 s)**" if missed else "")
    )
    return row


def prepare(database_url: str, master_key: str, workdir: Path) -> str:
    """Migrate and seed a database for this figure; the provider id."""
    from bench.common import ALL_TYPES
    from llmconfig import LLMConfigService

    svc = LLMConfigService(settings_for(database_url, master_key, workdir))
    try:
        return seed(svc, base_url="http://127.0.0.1:9/v1", models=ALL_TYPES)
    finally:
        svc.close()


def library_env(database_url: str, master_key: str) -> dict[str, str]:
    return clean_env(
        LLMCONFIG_DATABASE_URL=database_url,
        LLMCONFIG_MASTER_KEY=master_key,
        LLMCONFIG_CACHE_TTL="1",
        PYTHONPATH=str(REPO),
    )
