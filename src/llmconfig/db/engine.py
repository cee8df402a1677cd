"""Engines and sessions. One engine per :class:`~llmconfig.settings.Settings`; no import-time globals."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine.url import URL, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, IntegrityError, OperationalError
from sqlalchemy.exc import InterfaceError as SAInterfaceError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from llmconfig.errors import ConcurrentChangeError, DatabaseUnavailableError, SettingsError

# Errors that mean "the database is not there", as opposed to a bug or a constraint violation; see
# is_unavailable for the one more case that no class names on its own.
UNAVAILABLE_ERRORS = (OperationalError, SAInterfaceError)


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be used at all, rather than that one statement failed.

    Besides connection failures, a plain ``DatabaseError`` counts: SQLite raises it for a file that is not
    a database (or is damaged), and its subclasses (integrity, data, programming errors) are excluded.
    """
    return isinstance(exc, UNAVAILABLE_ERRORS) or type(exc) is DatabaseError


@contextmanager
def outages_mapped(url: URL | None = None) -> Iterator[None]:
    """Turn an outage raised in the block into :class:`DatabaseUnavailableError`; other errors pass through."""
    try:
        yield
    except (DatabaseError, SAInterfaceError) as exc:
        if not is_unavailable(exc):
            raise
        raise DatabaseUnavailableError(describe_unavailable(exc, url), detail=_first_line(exc)) from None


def create_db_engine(database_url: str, *, connect_timeout: float = 5.0) -> Engine:
    """Create an engine with the connection settings llmconfig relies on for each backend."""
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise SettingsError(
            f"LLMCONFIG_DATABASE_URL is not a valid database URL ({exc}); "
            "use sqlite:///path/to/file.db or postgresql+psycopg://user:password@host/db"
        ) from None
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin_sqlite)
        return engine
    if url.get_backend_name() == "postgresql":
        return create_engine(
            url,
            pool_pre_ping=True,
            connect_args={"connect_timeout": max(1, int(connect_timeout))},
        )
    raise SettingsError(f"Database backend {url.get_backend_name()!r} is not supported; use SQLite or PostgreSQL")


# Execution option that marks a connection about to write (see ``transaction(write=True)``).
WRITE_OPTION = "llmconfig_write"


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from the sqlite3 module so that _begin_sqlite decides how to BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers (every agent process) proceed while one writer commits.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _begin_sqlite(connection: Connection) -> None:
    # A deferred transaction that reads, then writes, fails at once with "database is locked" when another
    # writer committed in between (busy_timeout does not apply to that case). Writers therefore take the
    # write lock up front and queue behind each other; readers stay deferred and never wait.
    immediate = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


# The session of the unit of work in progress in this thread or task, if any (see ``unit_of_work``).
_current: ContextVar[tuple[sessionmaker[Session], Session] | None] = ContextVar("llmconfig_unit", default=None)


@contextmanager
def transaction(sessions: sessionmaker[Session], *, write: bool = False) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error, map outages to our error type.

    ``write=True`` for units that change something: on SQLite they take the write lock when they start.
    Inside :func:`unit_of_work` this joins the enclosing transaction instead of starting its own, so that
    several service calls commit (or roll back) together.
    """
    current = _current.get()
    if current is not None and current[0] is sessions:
        yield current[1]
        return
    try:
        with outages_mapped(_url_of(sessions)), sessions.begin() as session:
            if write:
                session.connection(execution_options={WRITE_OPTION: True})
            token = _current.set((sessions, session))
            try:
                yield session
            finally:
                _current.reset(token)
    except (IntegrityError, StaleDataError):
        # Every service checks its rules before writing; a constraint or version clash at commit means another
        # writer changed the same thing in between. Services that can say more catch these themselves.
        raise ConcurrentChangeError(
            "Someone else changed the same thing at the same moment, so nothing was changed; reload and try again"
        ) from None


unit_of_work = partial(transaction, write=True)
"""Make every service call inside the ``with`` block part of one write transaction."""


@contextmanager
def reading(sessions: sessionmaker[Session]) -> Iterator[Connection]:
    """A Core connection for the hot read paths (resolution, revision checks), outages mapped as above.

    An ORM session costs more than the two or three statements ``get_llm`` needs on a cache miss, so those
    statements run on a plain connection; its transaction is rolled back when the block ends. Inside
    :func:`unit_of_work` the enclosing transaction's connection is used, so a write sees its own changes.

    On PostgreSQL the connection is in autocommit: a transaction around these reads would cost a BEGIN and a
    ROLLBACK, two round trips besides the one of a cold resolution's only statement. Each statement then
    reads its own snapshot; a change committed between two of them is announced with a newer revision than
    the one read, so what was resolved from both is replaced when that announcement arrives.
    """
    current = _current.get()
    if current is not None and current[0] is sessions:
        yield current[1].connection()
        return
    engine: Engine = sessions.kw["bind"]
    with outages_mapped(engine.url), engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execution_options(isolation_level="AUTOCOMMIT")
        yield connection


def _url_of(sessions: sessionmaker[Session]) -> URL | None:
    bind = sessions.kw.get("bind")
    return bind.url if isinstance(bind, Engine) else None


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "orig", exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def describe_unavailable(exc: Exception, url: URL | None = None) -> str:
    first_line = _first_line(exc)
    if url is not None and url.get_backend_name() == "sqlite":
        return (
            f"The SQLite database {url.database or ':memory:'} cannot be used ({first_line}); check "
            "LLMCONFIG_DATABASE_URL, that the file is an llmconfig database (or absent, to create one) and "
            "that its directory exists and is writable"
        )
    return (
        f"The configuration database cannot be reached ({first_line}); "
        "check LLMCONFIG_DATABASE_URL and that the database server is running"
    )
