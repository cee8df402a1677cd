"""A throwaway PostgreSQL cluster in a temporary directory, started the way tests/conftest.py does it.

Debian's server binaries, ``initdb`` as the ``postgres`` system user when running as root, a free
loopback port, trust authentication, and durability switched off (fsync, full page writes, synchronous
commit): the bench measures llmconfig, not the disk.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql


class BenchError(RuntimeError):
    """Something the bench needs is missing or did not start; the message says what to do."""


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _bin_dir() -> Path:
    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.parent.name)) or (0,)

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=version)
    if not candidates or not (candidates[-1].parent / "pg_ctl").exists():
        raise BenchError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin; "
            "`make bench` installs Debian's postgresql package through `make system-deps`"
        )
    return candidates[-1].parent


def _as_server_user(command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root; drop to the ``postgres`` system user in that case."""
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--", *command]
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *command]


def _run(command: list[str], *, what: str, log: Path | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        server_log = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
        raise BenchError(
            f"{what} failed (exit {result.returncode}): {' '.join(command)}\n"
            f"{result.stdout}\n{result.stderr}\n{server_log}"
        )


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a cluster; yield the server URL (``postgresql+psycopg://postgres@127.0.0.1:PORT/postgres``)."""
    bin_dir = _bin_dir()
    workdir = Path(tempfile.mkdtemp(prefix="llmconfig-bench-pg-"))
    data_dir, log_file = workdir / "data", workdir / "server.log"
    if os.geteuid() == 0:
        shutil.chown(workdir, user="postgres", group="postgres")
    port = free_tcp_port()
    pg_ctl = str(bin_dir / "pg_ctl")
    started = False
    try:
        _run(
            _as_server_user(
                [str(bin_dir / "initdb"), "-D", str(data_dir), "-A", "trust", "-U", "postgres", "-E", "UTF8"]
            ),
            what="initdb",
        )
        options = (
            f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={workdir} "
            "-c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200"
        )
        started = True
        _run(
            _as_server_user(
                [pg_ctl, "-D", str(data_dir), "-l", str(log_file), "-o", options, "-w", "-t", "60", "start"]
            ),
            what="pg_ctl start",
            log=log_file,
        )
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        if started:
            subprocess.run(
                _as_server_user([pg_ctl, "-D", str(data_dir), "-m", "immediate", "-w", "stop"]),
                capture_output=True,
                check=False,
                timeout=60,
            )
        shutil.rmtree(workdir, ignore_errors=True)


def create_database(server_url: str, prefix: str = "llmconfig_bench") -> str:
    """A new, empty database on the server; returns its SQLAlchemy URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    base, _, _ = server_url.rpartition("/")
    conninfo = server_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"{base}/{name}"
