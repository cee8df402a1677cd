"""Figure 7: the OpenAI-compatible gateway in front of an upstream that costs almost nothing.

Debian's nginx answers ``POST …/chat/completions`` with a fixed completion (and, under another prefix, a
fixed event stream), so the upstream is never the bottleneck. The same load generator (wrk, one thread)
drives, side by side and in turn:

* nginx directly: what the upstream itself costs;
* a bare pass-through proxy (:mod:`bench.gateway_proxy`: Starlette forwarding with aiohttp), served by the
  same uvicorn configuration as ``llmconfig serve``: the floor for a Python gateway here;
* ``llmconfig serve`` with providers on that nginx: ``POST /v1/chat/completions`` with a client token.

Targets (issue 12): median latency added over calling the upstream directly ≤ 1 ms at one connection;
throughput at 32 connections ≥ 0.7 × the bare proxy's; streaming: added time to the first chunk ≤ 2 ms
(median, measured by an aiohttp client, one request at a time).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tests.pgserver import free_tcp_port

from bench.common import Row, fmt_seconds, median, percentile
from bench.postgres import BenchError
from bench.procs import BIN, REPO, Processes, Server, clean_env, start_server

NGINX = Path("/usr/sbin/nginx")
WRK = shutil.which("wrk") or "/usr/bin/wrk"
PROMPT = {"model": "reasoning", "messages": [{"role": "user", "content": "Say hello"}]}
ROUNDS = 3
STREAM_PROMPT = {"model": "tools", "messages": [{"role": "user", "content": "Say hello"}], "stream": True}

COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "bench-model",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello! How can I help you today?", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18},
}


def _stream_body() -> str:
    def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None, choices: bool = True) -> str:
        payload: dict[str, Any] = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "bench-model",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else [],
            "usage": usage,
        }
        return "data: " + json.dumps(payload, separators=(",", ":")) + "\n\n"

    words = ["Hello", "!", " How", " can", " I", " help", " you", " today", "?"]
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": word}) for word in words]
    events.append(chunk({}, "stop"))
    events.append(chunk({}, usage={"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18}, choices=False))
    events.append("data: [DONE]\n\n")
    return "".join(events)


def _nginx_conf(prefix: Path, port: int) -> str:
    completion = json.dumps(COMPLETION, separators=(",", ":"))
    stream = _stream_body().replace("\n", "\\n")
    for text in (completion, stream):
        if "'" in text or "$" in text:
            raise BenchError("the fixed answers must not contain ' or $ (nginx string syntax)")
    return f"""
worker_processes 1;
daemon off;
master_process on;
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    client_body_buffer_size 64k;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
    server {{
        listen 127.0.0.1:{port};
        location = /plain/v1/chat/completions {{
            default_type application/json;
            return 200 '{completion}';
        }}
        location = /sse/v1/chat/completions {{
            default_type text/event-stream;
            return 200 '{stream}';
        }}
    }}
}}
"""


def start_nginx(procs: Processes, workdir: Path) -> str:
    """nginx on a free loopback port serving the fixed answers; its root URL."""
    if not NGINX.exists():
        raise BenchError(f"{NGINX} not found: run `make system-deps` (installs Debian's nginx)")
    prefix = workdir / "nginx"
    prefix.mkdir(exist_ok=True)
    port = free_tcp_port()
    conf = prefix / "nginx.conf"
    conf.write_text(_nginx_conf(prefix, port))
    log = (prefix / "stdout.log").open("wb")
    process = procs.start([str(NGINX), "-c", str(conf), "-p", str(prefix)], env=clean_env(), cwd=prefix, stdout=log)
    url = f"http://127.0.0.1:{port}"
    _wait_for(url + "/plain/v1/chat/completions", process, prefix / "error.log")
    return url


def start_bare_proxy(procs: Processes, workdir: Path, upstream: str) -> str:
    """The bare Starlette + aiohttp proxy under uvicorn, configured as ``llmconfig serve`` runs uvicorn."""
    port = free_tcp_port()
    log_path = workdir / "bare-proxy.log"
    log = log_path.open("wb")
    argv = [
        str(BIN / "python"),
        "-m",
        "uvicorn",
        "bench.gateway_proxy:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "info",
        "--no-proxy-headers",
    ]
    process = procs.start(argv, env=clean_env(BENCH_UPSTREAM=upstream), cwd=REPO, stdout=log)
    url = f"http://127.0.0.1:{port}"
    _wait_for(url + "/plain/v1/chat/completions", process, log_path)
    return url


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise BenchError(f"{process.args!r} exited with {process.returncode}: {text}")
        try:
            if httpx.post(url, json=PROMPT, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise BenchError(f"{url} did not answer within 30 s")


def prepare(database_url: str, master_key: str, workdir: Path, upstream: str) -> str:
    """Migrate and configure: ``reasoning`` on nginx's completion, ``tools`` on its stream; a client token."""
    from pydantic import SecretStr

    from bench.common import PROVIDER_KEY, settings_for
    from llmconfig import LLMConfigService
    from llmconfig.config import ConfigUpdate
    from llmconfig.db import upgrade_to_head
    from llmconfig.providers.schemas import ProviderCreate

    svc = LLMConfigService(settings_for(database_url, master_key, workdir))
    try:
        upgrade_to_head(svc.engine)
        for name, prefix, interaction_type in (("plain", "plain", "reasoning"), ("sse", "sse", "tools")):
            provider, _ = svc.providers.add(
                ProviderCreate(
                    name=name,
                    provider_type="custom",
                    api_base_url=f"{upstream}/{prefix}/v1",
                    api_key=SecretStr(PROVIDER_KEY),
                ),
                actor="bench",
                validate=False,
            )
            svc.config.set_global(
                interaction_type,
                ConfigUpdate(provider_id=provider.id, model_name="bench-model", temperature=0.5, max_tokens=64),
                actor="bench",
            )
        token, _ = svc.tokens.create(role="client", name="bench-agents")
    finally:
        svc.close()
    return token


# ------------------------------------------------------------------------------------------------ load


@dataclass
class Load:
    """What wrk measured in one run."""

    requests: int
    seconds: float
    errors: int
    non_2xx: int
    p50: float
    p99: float

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds


_LUA = """
wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
{auth}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50), latency:percentile(99)))
end
"""


def wrk(url: str, *, connections: int, seconds: float, workdir: Path, token: str | None = None) -> Load:
    """One wrk run (one thread) of POSTs of the chat prompt to ``url``."""
    script = workdir / f"wrk-{connections}-{abs(hash(url))}.lua"
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"' if token else ""
    script.write_text(_LUA.format(body=json.dumps(PROMPT), auth=auth))
    argv = [WRK, "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script), url]
    output = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    match = re.search(r"^RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$", output, re.M)
    if match is None:
        raise BenchError(f"wrk printed no result:\n{output[-2000:]}")
    requests, duration_us, errors, non_2xx, p50_us, p99_us = map(int, match.groups())
    return Load(requests, duration_us / 1e6, errors, non_2xx, p50_us / 1e6, p99_us / 1e6)


async def _first_chunk_times(url: str, body: dict[str, Any], token: str | None, samples: int) -> list[float]:
    import aiohttp

    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    payload = json.dumps(body).encode()
    times: list[float] = []
    async with aiohttp.ClientSession(trust_env=False) as session:
        for index in range(samples + 20):
            started = time.perf_counter()
            async with session.post(url, data=payload, headers=headers) as response:
                if response.status != 200:
                    raise BenchError(f"{url} answered {response.status}: {await response.text()}")
                await response.content.readany()
                elapsed = time.perf_counter() - started
                await response.read()
            if index >= 20:  # warm-up: connections, caches
                times.append(elapsed)
    return times


def first_chunk_times(url: str, *, token: str | None = None, samples: int = 300) -> list[float]:
    """Seconds from sending a stream request to the first bytes of its body, one request at a time."""
    return asyncio.run(_first_chunk_times(url, STREAM_PROMPT, token, samples))


# ------------------------------------------------------------------------------------------------ the figure


def gateway_figures(
    procs: Processes, workdir: Path, *, database_url: str, master_key: str, env: dict[str, str]
) -> list[Row]:
    """Figure 7 (module docstring): three rows, each measured side by side against its yardstick."""
    upstream = start_nginx(procs, workdir)
    token = prepare(database_url, master_key, workdir, upstream)
    proxy = start_bare_proxy(procs, workdir, upstream)
    server: Server = start_server(procs, workdir, name="gateway", env=env)
    direct_url = f"{upstream}/plain/v1/chat/completions"
    proxy_url = f"{proxy}/plain/v1/chat/completions"
    gateway_url = f"{server.url}/v1/chat/completions"
    check = httpx.post(gateway_url, json=PROMPT, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    if (
        check.status_code != 200
        or check.json()["choices"][0]["message"]["content"] != COMPLETION["choices"][0]["message"]["content"]
    ):  # type: ignore[index]
        raise BenchError(f"the gateway answered {check.status_code}: {check.text[:500]}")
    targets = (("direct", direct_url, None), ("proxy", proxy_url, None), ("gateway", gateway_url, token))
    try:
        for _label, url, auth in targets:
            for connections in (1, 32):
                wrk(url, connections=connections, seconds=1, workdir=workdir, token=auth)  # warm-up
        # Rounds of the three side by side, in turn: load from elsewhere on a shared machine then weighs on all
        # three alike, and each figure is the median over the rounds.
        rounds: list[dict[tuple[str, int], Load]] = []
        for _ in range(ROUNDS):
            runs: dict[tuple[str, int], Load] = {}
            for connections, seconds in ((1, 3.0), (32, 4.0)):
                for label, url, auth in targets:
                    runs[(label, connections)] = wrk(
                        url, connections=connections, seconds=seconds, workdir=workdir, token=auth
                    )
            rounds.append(runs)
        ttfb_direct = first_chunk_times(f"{upstream}/sse/v1/chat/completions")
        ttfb_proxy = first_chunk_times(f"{proxy}/sse/v1/chat/completions")
        ttfb_gateway = first_chunk_times(gateway_url, token=token)
    finally:
        procs.stop(server.process)
    return _rows(rounds, ttfb_direct, ttfb_proxy, ttfb_gateway)


def _describe(load: Load) -> str:
    return (
        f"{load.throughput:.0f} req/s, p50 {fmt_seconds(load.p50)}, p99 {fmt_seconds(load.p99)}, "
        f"{load.requests} answers, {load.errors} socket errors, {load.non_2xx} non-2xx"
    )


def _rows(
    rounds: list[dict[tuple[str, int], Load]],
    ttfb_direct: list[float],
    ttfb_proxy: list[float],
    ttfb_gateway: list[float],
) -> list[Row]:
    failed = sum(load.errors + load.non_2xx for runs in rounds for load in runs.values())
    added = median([runs[("gateway", 1)].p50 - runs[("direct", 1)].p50 for runs in rounds])
    proxy_added = median([runs[("proxy", 1)].p50 - runs[("direct", 1)].p50 for runs in rounds])
    latency = Row(
        "7. `POST /v1/chat/completions` in front of nginx, 1 connection: median latency added over nginx directly",
        f"{fmt_seconds(added)} (bare proxy adds {fmt_seconds(proxy_added)})",
        "≤ 1 ms",
        added <= 0.001 and failed == 0,
    )
    ratios = [runs[("gateway", 32)].throughput / runs[("proxy", 32)].throughput for runs in rounds]
    ratio = median(ratios)
    gateway_rps = median([runs[("gateway", 32)].throughput for runs in rounds])
    proxy_rps = median([runs[("proxy", 32)].throughput for runs in rounds])
    gateway_p99 = median([runs[("gateway", 32)].p99 for runs in rounds])
    proxy_p99 = median([runs[("proxy", 32)].p99 for runs in rounds])
    throughput = Row(
        "7. `POST /v1/chat/completions` at 32 connections: throughput ÷ a bare Starlette + aiohttp proxy",
        f"{ratio:.2f} ({gateway_rps:.0f} ÷ {proxy_rps:.0f} req/s; p99 {fmt_seconds(gateway_p99)} vs "
        f"{fmt_seconds(proxy_p99)})",
        "≥ 0.7",
        ratio >= 0.7 and failed == 0,
    )
    for index, runs in enumerate(rounds, 1):
        for connections, row in ((1, latency), (32, throughput)):
            row.details += [
                f"round {index}, {connections} connection{'s' if connections > 1 else ''}, {label}: "
                f"{_describe(runs[(label, connections)])}"
                for label in ("direct", "proxy", "gateway")
            ]
    throughput.details.append(
        f"per-round ratios {', '.join(f'{r:.2f}' for r in ratios)}; load generator: wrk (Debian), one thread, "
        f"{ROUNDS} rounds of 3 s (1 connection) and 4 s (32 connections) per target in turn after a warm-up; "
        "nginx (Debian), one worker, answers a fixed completion; the gateway and the proxy each one uvicorn "
        f"process with the same settings (loop and HTTP parser: {_server_stack()}); all on the machine's shared "
        "cores"
    )
    added_first = median(ttfb_gateway) - median(ttfb_direct)
    stream = Row(
        "7. streaming `POST /v1/chat/completions`: added time to the first chunk over nginx directly (median)",
        f"{fmt_seconds(added_first)} (bare proxy adds {fmt_seconds(median(ttfb_proxy) - median(ttfb_direct))})",
        "≤ 2 ms",
        added_first <= 0.002,
    )
    for label, times in (("direct", ttfb_direct), ("proxy", ttfb_proxy), ("gateway", ttfb_gateway)):
        stream.details.append(
            f"first chunk, {label}: median {fmt_seconds(median(times))}, p99 {fmt_seconds(percentile(times, 99))} "
            f"over {len(times)} requests one at a time (aiohttp client)"
        )
    return [latency, throughput, stream]


def _server_stack() -> str:
    found = []
    for module, name in (("uvloop", "uvloop"), ("httptools", "httptools")):
        try:
            __import__(module)
            found.append(name)
        except ImportError:
            found.append(f"no {name}")
    return ", ".join(found) + " (uvicorn 'auto')"


def main() -> int:
    """``python -m bench.gateway``: figure 7 alone, on a fresh SQLite database."""
    import base64
    import secrets
    import tempfile

    for name in list(os.environ):
        if name.startswith("LLMCONFIG_"):
            del os.environ[name]
    procs = Processes()
    workdir = Path(tempfile.mkdtemp(prefix="llmconfig-bench-gateway-"))
    master_key = base64.b64encode(secrets.token_bytes(32)).decode()
    url = f"sqlite:///{workdir / 'gateway.db'}"
    env = clean_env(
        LLMCONFIG_DATABASE_URL=url,
        LLMCONFIG_MASTER_KEY=master_key,
        LLMCONFIG_ADMIN_TOKEN=secrets.token_urlsafe(32),
        LLMCONFIG_CACHE_TTL="1",
    )
    try:
        rows = gateway_figures(procs, workdir, database_url=url, master_key=master_key, env=env)
    finally:
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    for row in rows:
        print(f"{row.figure}: {row.value} (target {row.target}, met: {row.verdict})")
        for detail in row.details:
            print(f"  - {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
