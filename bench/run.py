"""Run every benchmark once, print the table, and write it to docs/benchmarks.md with the machine.

Figures and the targets the product promises:

1. warm ``get_llm("reasoning")`` ÷ direct ``ChatOpenAI(...)`` construction — ≤ 0.05
2. cold resolution after invalidation ÷ direct construction, SQLite and PostgreSQL — ≤ 3
3. propagation of a change made through a replica to ``get_llm`` in 4 other processes — p99 ≤ 20 ms
   on PostgreSQL; SQLite reported (bounded by ``LLMCONFIG_CACHE_TTL``); to 4 client-mode processes through
   the server's change stream — p99 ≤ 20 ms on both; beside it the ``PUT /config`` round trip p50 and where a
   write's time goes
4. ``GET /config`` at 32 connections ÷ a bare Starlette app on the same server stack answering the same
   bytes, loaded by the same generator (wrk) — throughput ≥ 0.5×, p99 ≤ 2×; and on two worker processes
5. usage-tracking overhead per ``invoke`` against a loopback peer — ≤ 1 ms
6. ``GET /config/validate`` with one provider that never answers ÷ request timeout — ≤ 1.2
7. ``POST /v1/chat/completions`` in front of nginx (a fixed completion): median latency added over nginx at one
   connection — ≤ 1 ms; throughput at 32 connections ÷ a bare Starlette + aiohttp proxy — ≥ 0.7; streaming: added
   time to the first chunk — ≤ 2 ms
8. client mode (``LLMCONFIG_SERVER_URL``): warm ``get_llm`` ÷ direct construction — ≤ 0.05; a cold resolution
   over HTTP ÷ direct construction — ≤ 3
9. warm ``get_llm`` of a group member whose entry has variants, four budgets in force, ÷ direct construction —
   ≤ 0.05; the budget check before a call — ≤ 0.05 ms median
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from types import FrameType

from bench import client_mode, gateway, http_figures, library, propagation, teams
from bench.common import Row, settings_for
from bench.machine import describe, load_average
from bench.postgres import create_database, postgres_server
from bench.procs import REPO, Processes, Server, clean_env, start_openai_peer, start_server

OUTPUT = REPO / "docs" / "benchmarks.md"

HOW_TO_READ = """\
Every value was measured in the run described above; nothing is typed in. Ratios divide an llmconfig
operation by constructing the same `ChatOpenAI` directly, so they carry over between machines better than
absolute times. Latencies are medians (p50) or 99th percentiles (p99) over the samples named under
*Details*. "met?" compares the value with the target the product promises; "—" marks figures without
a target. Absolute times (in parentheses) depend on the machine: a busy or small machine inflates the
multi-process figures (3, 4) most, because the replicas, the library processes, PostgreSQL and the load
generator all share its cores."""


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _measure(rows: list[Row], failures: list[str], name: str, target: str, step: Callable[[], list[Row]]) -> None:
    started = time.monotonic()
    _log(f"{name} …")
    try:
        produced = step()
    except Exception as exc:
        traceback.print_exc()
        failures.append(name)
        rows.append(Row(name, f"not measured: {type(exc).__name__}: {exc}".replace("\n", " ")[:300], target, False))
        return
    rows.extend(produced)
    for row in produced:
        _log(f"  {row.figure}: {row.value} (target {row.target}, met: {row.verdict})")
    _log(f"  ({time.monotonic() - started:.1f} s)")


def _busy_note(machine: dict[str, str]) -> str:
    cores = int(machine["cores"].split()[0])
    loads = []
    for key in ("load average at start (1 / 5 / 15 min)", "load average at end (1 / 5 / 15 min)"):
        try:
            loads.append(float(machine.get(key, "").split("/")[0]))
        except ValueError:
            continue
    if loads and max(loads) > cores * 0.75:
        return (
            f"\n\n**The machine was busy with other work during this run** (1-minute load average up to "
            f"{max(loads):.1f} on {cores} cores): every absolute time, and the ratios that involve the database "
            "or other processes, are inflated; run `make bench` on an idle machine for the product's figures."
        )
    return ""


def render(machine: dict[str, str], rows: list[Row], elapsed: float, args: argparse.Namespace) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench`, see `bench/`). Run it again to measure your machine; "
        "this file is replaced by each run.",
        "",
        f"## Run of {machine['date']} on {machine['CPU']}, {machine['cores'].split()[0]} cores",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in machine.items()),
        f"| run time | {elapsed:.0f} s |",
        "",
        "### How to read",
        "",
        HOW_TO_READ + _busy_note(machine),
        "",
        "### Results",
        "",
        "| figure | value | target | met? |",
        "|---|---|---|---|",
        *(f"| {row.figure} | {row.value} | {row.target} | {row.verdict} |" for row in rows),
        "",
        "### Details",
        "",
    ]
    for row in rows:
        if row.details:
            lines.append(f"- **{row.figure}**")
            lines.extend(f"  - {detail}" for detail in row.details)
    lines += [
        "",
        "Setup: SQLite files and a PostgreSQL cluster (fsync off) in temporary directories; "
        "`llmconfig serve` replicas with `LLMCONFIG_CACHE_TTL=1` and `LLMCONFIG_ADMIN_TOKEN` set; providers "
        "are loopback OpenAI-compatible peers from `tests/peers/`; everything on 127.0.0.1. Figure 4's load "
        "generator is wrk (one thread), its yardstick `bench/bare_app.py` on `llmconfig serve`'s uvicorn options. "
        f"Propagation: up to {args.changes} changes per database, within {args.pg_budget:.0f} s on PostgreSQL "
        f"and {args.sqlite_budget:.0f} s on SQLite.",
        "",
    ]
    return "\n".join(lines)


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--changes", type=int, default=200, help="propagation: changes per database (max)")
    parser.add_argument(
        "--pg-budget", type=float, default=45.0, help="propagation on PostgreSQL: seconds for the changes at most"
    )
    parser.add_argument(
        "--sqlite-budget", type=float, default=40.0, help="propagation on SQLite: seconds for the changes at most"
    )
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)

    for name in list(os.environ):
        if name.startswith("LLMCONFIG_"):
            del os.environ[name]  # the figures must not depend on the caller's settings
    signal.signal(signal.SIGTERM, _raise_exit)
    signal.signal(signal.SIGHUP, _raise_exit)

    began = time.monotonic()
    machine = describe(REPO)
    rows: list[Row] = []
    failures: list[str] = []
    with ExitStack() as stack:
        procs = Processes()
        workdir = Path(tempfile.mkdtemp(prefix="llmconfig-bench-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        _log("starting PostgreSQL")
        pg_server = stack.enter_context(postgres_server())
        stack.callback(procs.stop_all)  # before PostgreSQL stops: servers and pollers hold connections

        master_key = base64.b64encode(secrets.token_bytes(32)).decode()
        admin_token = secrets.token_urlsafe(32)

        def sqlite_db(name: str) -> str:
            return f"sqlite:///{workdir / name}.db"

        def seeded(url: str) -> str:
            from bench.common import seed
            from llmconfig import LLMConfigService

            svc = LLMConfigService(settings_for(url, master_key, workdir))
            try:
                seed(svc, base_url=library.DIRECT_BASE_URL, models={"reasoning": "model-a"})
            finally:
                svc.close()
            return url

        def server_env(url: str) -> dict[str, str]:
            return clean_env(
                LLMCONFIG_DATABASE_URL=url,
                LLMCONFIG_MASTER_KEY=master_key,
                LLMCONFIG_ADMIN_TOKEN=admin_token,
                LLMCONFIG_CACHE_TTL="1",
                LLMCONFIG_REQUEST_TIMEOUT="2",
            )

        _measure(
            rows,
            failures,
            "1. warm get_llm ÷ direct construction",
            "≤ 0.05",
            lambda: [
                *library.warm_get_llm(seeded(sqlite_db("warm")), master_key, label="SQLite"),
                *library.warm_get_llm(seeded(create_database(pg_server)), master_key, label="PostgreSQL"),
            ],
        )
        _measure(
            rows,
            failures,
            "9. get_llm with groups, variants and budgets",
            "≤ 0.05; ≤ 0.05 ms",
            lambda: [
                *teams.teams_figures(seeded(sqlite_db("teams")), master_key, workdir, label="SQLite"),
                *teams.teams_figures(seeded(create_database(pg_server)), master_key, workdir, label="PostgreSQL"),
            ],
        )
        for label, make_url in (
            ("SQLite", lambda: sqlite_db("cold")),
            ("PostgreSQL", lambda: create_database(pg_server)),
        ):

            def cold(label: str = label, make_url: Callable[[], str] = make_url) -> list[Row]:
                return [library.cold_resolution(make_url(), master_key, workdir, label=label)]

            _measure(rows, failures, f"2. cold resolution ÷ direct construction ({label})", "≤ 3", cold)

        def usage() -> list[Row]:
            peer_url, peer = start_openai_peer(procs, workdir, models="gpt-4o,gpt-4o-mini")
            try:
                return [library.usage_overhead(sqlite_db("usage"), master_key, workdir, peer_url)]
            finally:
                procs.stop(peer)

        _measure(rows, failures, "5. usage-tracking overhead", "≤ 1 ms", usage)

        # The replica of each database, kept for the figures of its throughput.
        replicas: dict[str, Server] = {}

        def propagate(label: str, url: str, *, target: float | None, pause: float, budget: float) -> list[Row]:
            provider_id = propagation.prepare(url, master_key, workdir)
            env = server_env(url)
            server = start_server(procs, workdir, name=f"replica-a-{label.lower()}", env=env)
            replicas[label] = server
            result = propagation.propagation(
                procs,
                workdir,
                server=server,
                env=propagation.library_env(url, master_key),
                admin_token=admin_token,
                provider_id=provider_id,
                budget=budget,
                max_changes=args.changes,
                pause=pause,
            )
            row = propagation.propagation_row(
                result,
                label=label,
                target=target,
                pollers=4,
                poll_interval=0.001,
                max_changes=args.changes,
                budget=budget,
                pause=pause,
            )
            put = http_figures.put_round_trip(
                server.url, admin_token, provider_id, url, master_key, workdir, label=label
            )
            # The same change seen by client-mode processes: through the server's change stream.
            token = client_mode.client_token(server.url, admin_token)
            through_server = propagation.propagation(
                procs,
                workdir,
                server=server,
                env=client_mode.client_env(server.url, token),
                admin_token=admin_token,
                provider_id=provider_id,
                budget=budget,
                max_changes=args.changes,
                pause=0.02,
            )
            client_row = propagation.propagation_row(
                through_server,
                label=label,
                processes="client-mode processes",
                target=0.02,
                pollers=4,
                poll_interval=0.001,
                max_changes=args.changes,
                budget=budget,
                pause=0.02,
            )
            return [
                row,
                put,
                client_row,
                *client_mode.client_figures(server.url, admin_token, provider_id, label=label),
            ]

        pg_prop_url = create_database(pg_server)
        _measure(
            rows,
            failures,
            "3. propagation (PostgreSQL)",
            "p99 ≤ 20 ms",
            lambda: propagate("PostgreSQL", pg_prop_url, target=0.02, pause=0.02, budget=args.pg_budget),
        )
        sqlite_prop_url = sqlite_db("propagation")
        _measure(
            rows,
            failures,
            "3. propagation (SQLite)",
            "—",
            # A pause of up to one TTL between changes: the pollers' revision checks happen at any phase
            # relative to a change, as they would for changes an operator makes.
            lambda: propagate("SQLite", sqlite_prop_url, target=None, pause=1.0, budget=args.sqlite_budget),
        )

        for label, url in (("PostgreSQL", pg_prop_url), ("SQLite", sqlite_prop_url)):

            def against_bare(label: str = label, url: str = url) -> list[Row]:
                server = replicas.pop(label, None)
                if server is None:  # the propagation figure failed before its replica was up
                    with contextlib.suppress(Exception):  # seeded already when it failed later
                        propagation.prepare(url, master_key, workdir)
                    server = start_server(procs, workdir, name=f"replica-{label.lower()}", env=server_env(url))
                try:
                    return http_figures.config_against_bare(procs, workdir, server.url, admin_token, label=label)
                finally:
                    procs.stop(server.process)

            _measure(rows, failures, f"4. GET /config against a bare Starlette app ({label})", "≥ 0.5", against_bare)

        def on_workers() -> list[Row]:
            env = {**server_env(pg_prop_url), "LLMCONFIG_WORKERS": "2"}
            server = start_server(procs, workdir, name="workers-postgresql", env=env)
            try:
                return [http_figures.config_on_workers(server.url, admin_token, workdir, workers=2, label="PostgreSQL")]
            finally:
                procs.stop(server.process)

        _measure(rows, failures, "4. GET /config on two workers", "—", on_workers)

        for label, make_url in (
            ("PostgreSQL", lambda: create_database(pg_server)),
            ("SQLite", lambda: sqlite_db("validate")),
        ):

            def validate(label: str = label, make_url: Callable[[], str] = make_url) -> list[Row]:
                url = make_url()
                return [
                    http_figures.validate_timeout(
                        procs,
                        workdir,
                        database_url=url,
                        master_key=master_key,
                        env=server_env(url),
                        admin_token=admin_token,
                        label=label,
                    )
                ]

            _measure(rows, failures, f"6. GET /config/validate with a hanging provider ({label})", "≤ 1.2", validate)

        def gateway_rows() -> list[Row]:
            url = sqlite_db("gateway")
            return gateway.gateway_figures(procs, workdir, database_url=url, master_key=master_key, env=server_env(url))

        _measure(rows, failures, "7. the OpenAI-compatible gateway in front of nginx", "see rows", gateway_rows)

        _log("stopping everything the bench started")

    rows.sort(key=lambda row: row.figure.split(".", 1)[0])
    elapsed = time.monotonic() - began
    machine["load average at end (1 / 5 / 15 min)"] = load_average()
    text = render(machine, rows, elapsed, args)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    _log(f"wrote {args.output} ({elapsed:.0f} s)")
    if failures:
        _log(f"not measured: {', '.join(failures)}")
        return 1
    return 0
