"""Figure 8: ``get_llm`` in client mode (through a running ``llmconfig serve``), warm and cold, against direct
construction; and the environment of client-mode pollers for the propagation figure."""

from __future__ import annotations

import itertools
import time

import httpx

from bench.common import Row, fmt_seconds, median, time_each
from bench.library import _build_directly, direct_construction
from bench.procs import clean_env


def client_token(server_url: str, admin_token: str) -> str:
    """A new client token, made over REST as an operator would."""
    response = httpx.post(
        f"{server_url}/api/v1/llm/tokens",
        json={"name": "bench-agents", "role": "client"},
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=30,
    )
    response.raise_for_status()
    token: str = response.json()["token"]
    return token


def client_env(server_url: str, token: str) -> dict[str, str]:
    """What a client-mode agent process has: the server's address and its token, nothing else of llmconfig."""
    return clean_env(LLMCONFIG_SERVER_URL=server_url, LLMCONFIG_TOKEN=token)


def client_figures(
    server_url: str, admin_token: str, provider_id: str, *, label: str, iterations: int = 150
) -> list[Row]:
    """Warm ``get_llm`` (a dictionary lookup) and a cold resolution over HTTP, each ÷ direct construction."""
    from llmconfig import LLMConfigService, Settings

    token = client_token(server_url, admin_token)
    service = LLMConfigService(Settings(_env_file=None, server_url=server_url, token=token))
    headers = {"Authorization": f"Bearer {admin_token}"}
    try:
        service.get_llm("reasoning")
        direct = median(direct_construction())
        per_call: list[float] = []
        deadline = time.monotonic() + 2.5
        get_llm = service.get_llm
        while time.monotonic() < deadline:
            started = time.perf_counter()
            for _ in range(100):
                get_llm("reasoning")
            per_call.append((time.perf_counter() - started) / 100)
        warm = median(per_call)
        pushed = service.cache._source.pushed
        warm_row = Row(
            f"8. client mode: warm `get_llm` ÷ direct construction ({label})",
            f"{warm / direct:.4f} ({fmt_seconds(warm)} vs {fmt_seconds(direct)})",
            "≤ 0.05",
            warm / direct <= 0.05,
        )
        warm_row.details.append(
            f"an in-process `LLMConfigService` with only LLMCONFIG_SERVER_URL and a client token; median of "
            f"{len(per_call)} blocks of 100 calls; change stream connected: {pushed}"
        )

        counter = itertools.count()
        with httpx.Client(base_url=f"{server_url}/api/v1/llm", headers=headers, timeout=30) as admin:

            def change() -> None:
                model = f"client-cold-{next(counter)}"
                admin.put(
                    "/config/reasoning", json={"provider_id": provider_id, "model_name": model}
                ).raise_for_status()
                time.sleep(0.005)  # the change stream's event lands before the clock starts
                service.invalidate()

            time_each(lambda: service.get_llm("reasoning"), 5, before=change)
            samples: list[float] = []
            direct_samples: list[float] = []
            floor_samples: list[float] = []
            with httpx.Client(base_url=server_url, timeout=30) as probe:
                probe.get("/health")
                for _ in range(iterations):
                    samples += time_each(lambda: service.get_llm("reasoning"), 1, before=change)
                    direct_samples += time_each(_build_directly, 1, before=change)
                    # The floor of any request to the server after the same pause: one that does no work.
                    floor_samples += time_each(lambda: probe.get("/health"), 1, before=change)
        cold, direct_cold, floor = median(samples), median(direct_samples), median(floor_samples)
        cold_row = Row(
            f"8. client mode: cold resolution over HTTP ÷ direct construction ({label})",
            f"{cold / direct_cold:.2f} ({fmt_seconds(cold)} vs {fmt_seconds(direct_cold)})",
            "≤ 3",
            cold / direct_cold <= 3,
        )
        cold_row.details.append(
            f"medians of {iterations} cold `get_llm` calls (GET /resolve from the server, then the model is built), "
            "each after a change to a model not used before and `invalidate()` (which also forgets the resolution "
            "the change's event carried, so that the call asks the server), and of as many direct constructions "
            "timed the same way, interleaved"
        )
        cold_row.details.append(
            f"for scale, GET /health (a database ping in a worker thread) after the same change and pause takes "
            f"{fmt_seconds(floor)} ({floor / direct_cold:.2f}× direct construction): on this machine a process "
            f"woken from idle answers its first request late"
        )
        return [warm_row, cold_row]
    finally:
        service.close()
