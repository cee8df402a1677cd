"""A throwaway PostgreSQL cluster for the bench (the same helper the tests use: tests/pgserver.py).

Debian's server binaries, ``initdb`` as the ``postgres`` system user when running as root, a free
loopback port, trust authentication, and durability switched off (fsync, full page writes, synchronous
commit): the bench measures llmconfig, not the disk.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from tests.pgserver import PostgresServer, PostgresServerError


class BenchError(RuntimeError):
    """Something the bench needs is missing or did not start; the message says what to do."""


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a cluster; yield the server URL (``postgresql+psycopg://postgres@127.0.0.1:PORT/postgres``)."""
    try:
        server = PostgresServer(prefix="llmconfig-bench-pg-")
        server.__enter__()
    except PostgresServerError as exc:
        raise BenchError(str(exc)) from None
    try:
        yield server.url
    finally:
        server.remove()


def create_database(server_url: str, prefix: str = "llmconfig_bench") -> str:
    """A new, empty database on the server; returns its SQLAlchemy URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    base, _, _ = server_url.rpartition("/")
    conninfo = server_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"{base}/{name}"
