"""Copy a whole llmconfig database into a new one, e.g. from SQLite to PostgreSQL (``llmconfig db copy``).

Everything the source holds is carried: providers with their key references, catalogs, interaction types,
global entries, user overrides, history and audit, usage records, prices and API tokens. The tables are
those of the ORM metadata, in dependency order, so a table added by a later migration is copied without a
change here; Alembic's own version table is not copied (the target has its own).

The target must be new: no schema at all (it is migrated to the source's revision first) or migrated to
that same revision and holding nothing but what the migrations themselves insert (the built-in interaction
types, the list prices, the revision counter). The copy runs in one transaction on the target, reading
the source from one consistent snapshot, in batches; each table's row count and checksum are compared
between what was read and what the target then holds, and any difference rolls the whole copy back.

Keys: the rows keep their references as they are (the local backend's ciphertexts stay encrypted under
the same master key), unless a secret backend for the target is given; then every key not already in it
is stored there again and the copied rows point at the new references (see
:func:`llmconfig.secrets.maintenance.restore_in`). The source is never changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, Engine, Table, func, inspect, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from llmconfig.db.engine import WRITE_OPTION, create_db_engine, is_unavailable, outages_mapped
from llmconfig.db.migrate import current_revision, head_revision, upgrade_to_head
from llmconfig.db.models import Base, ProviderKey
from llmconfig.errors import (
    ConflictError,
    DatabaseUnavailableError,
    LLMConfigError,
    SecretBackendError,
    SettingsError,
)
from llmconfig.secrets.base import SecretBackend

__all__ = ["DEFAULT_BATCH_SIZE", "CopyReport", "TableCopy", "copy_database", "table_checksum"]

DEFAULT_BATCH_SIZE = 1000

# The one column that holds secret references, the column of its row that owns the secret (the provider), and
# the row's own id (the key's slot in the secret backend).
_KEY_REFERENCE = ProviderKey.__table__.c.secret_ref
_KEY_OWNER = ProviderKey.__table__.c.provider_id
_KEY_ID = ProviderKey.__table__.c.id

_LOOPBACK_HOSTS = {"", "localhost", "127.0.0.1", "::1"}


class TableCopy(BaseModel):
    """One copied table: how many rows, and their checksum (the same on both sides, or the copy fails)."""

    table: str
    rows: int
    checksum: str


class CopyReport(BaseModel):
    """What :func:`copy_database` did. URLs are shown without their passwords."""

    source: str
    target: str
    schema_revision: str
    # Whether the target had no schema and was migrated before the copy.
    migrated_target: bool
    # None when key references were copied as they are.
    secret_backend: str | None
    reencrypted_keys: int
    tables: list[TableCopy]
    total_rows: int


def copy_database(
    source: Engine,
    target_url: str,
    *,
    target_secrets: Callable[[], SecretBackend] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[TableCopy], None] | None = None,
) -> CopyReport:
    """Copy every table of ``source`` into the new database at ``target_url``; see the module docstring.

    ``target_secrets`` builds the backend the target's keys go into, when it differs from where they are;
    it is called only once every check has passed. ``progress`` is called after each table is copied and
    verified. Refusals (a malformed or unsupported URL, the source's own database, a target that cannot be
    reached, has another schema revision or holds data, a source that is not migrated) raise before
    anything is written, with a message saying what to do; a failure later rolls the copy back (a target
    migrated for it stays migrated and empty, so the command can run again), and keys already stored in
    ``target_secrets`` for it are deleted again.
    """
    if batch_size < 1:
        raise SettingsError(f"The batch size must be at least 1, not {batch_size}")
    url = _target_url(target_url)
    if _same_database(source.url, url):
        raise SettingsError(
            f"The target {_shown(url)} is the database being copied; give the URL of a new, empty database"
        )
    head = head_revision()
    if current_revision(source) != head:
        raise LLMConfigError("The database schema is missing or out of date; run `llmconfig migrate` first")
    target = create_db_engine(url.render_as_string(hide_password=False))
    try:
        with _target_errors(url):
            migrate = _needs_schema(target, head)
        if not migrate:
            _refuse_data(target, url)
        backend = target_secrets() if target_secrets is not None else None
        if migrate:
            with _target_errors(url):
                upgrade_to_head(target)
        stored: list[str] = []
        tables: list[TableCopy] = []
        try:
            with _copy_errors(), _snapshot(source) as reading, _one_transaction(target) as writing:
                for table in _clear(writing):
                    copied = _copy_table(table, reading, writing, backend=backend, stored=stored, batch_size=batch_size)
                    tables.append(copied)
                    if progress is not None:
                        progress(copied)
                _advance_sequences(writing)
        except BaseException:
            if backend is not None:
                from llmconfig.secrets.maintenance import forget_uncommitted

                for reference in stored:
                    forget_uncommitted(backend, reference, committed=False, old_ref=None)
            raise
    finally:
        target.dispose()
    return CopyReport(
        source=_shown(source.url),
        target=_shown(url),
        schema_revision=head,
        migrated_target=migrate,
        secret_backend=backend.name if backend is not None else None,
        reencrypted_keys=len(stored),
        tables=tables,
        total_rows=sum(table.rows for table in tables),
    )


# -- checks before anything is written ------------------------------------------------------------------


def _target_url(value: str) -> URL:
    try:
        url = make_url(value)
    except ArgumentError:
        raise SettingsError(
            "The target is not a valid database URL; use sqlite:///path/to/file.db or "
            "postgresql+psycopg://user:password@host/db"
        ) from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise SettingsError(
            f"The target's database backend {url.get_backend_name()!r} is not supported; use SQLite or PostgreSQL"
        )
    if url.get_backend_name() == "postgresql" and url.get_driver_name() != "psycopg":
        raise SettingsError(
            f"The target URL names the {url.get_driver_name()!r} driver, which llmconfig does not use; "
            "write it as postgresql+psycopg://…"
        )
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        raise SettingsError("The target must be a database file (sqlite:///path/to/file.db), not an in-memory one")
    return url


def _same_database(source: URL, target: URL) -> bool:
    if source.get_backend_name() != target.get_backend_name():
        return False
    if source.get_backend_name() == "sqlite":
        return os.path.realpath(source.database or "") == os.path.realpath(target.database or "")

    def where(url: URL) -> tuple[str, int, str | None]:
        host = url.host or ""
        return ("localhost" if host in _LOOPBACK_HOSTS else host.lower(), url.port or 5432, url.database)

    return where(source) == where(target)


def _shown(url: URL) -> str:
    return url.render_as_string(hide_password=True)


@contextmanager
def _target_errors(url: URL) -> Iterator[None]:
    """Say "the target" in outage messages, which otherwise speak of LLMCONFIG_DATABASE_URL."""
    try:
        with outages_mapped(url):
            yield
    except DatabaseUnavailableError as exc:
        if url.get_backend_name() == "sqlite":
            advice = "check the path, and that its directory exists and is writable"
        else:
            advice = "check the URL, that the server is running and that the database exists (CREATE DATABASE)"
        raise DatabaseUnavailableError(
            f"The target database {_shown(url)} cannot be used ({exc.detail}); {advice}", detail=exc.detail
        ) from None
    except (NoSuchModuleError, ImportError) as exc:  # pragma: no cover - _target_url admits installed drivers only
        raise SettingsError(f"The target URL cannot be used: {exc}") from None


@contextmanager
def _copy_errors() -> Iterator[None]:
    """Errors of either database once the copy runs: the target's transaction is rolled back by then."""
    try:
        yield
    except DatabaseUnavailableError as exc:
        raise DatabaseUnavailableError(
            f"The copy stopped because a database stopped answering ({exc.detail}); nothing was committed to the "
            "target: run the command again",
            detail=exc.detail,
        ) from None
    except DBAPIError as exc:
        if is_unavailable(exc):
            raise DatabaseUnavailableError(
                f"The copy stopped because a database stopped answering ({_first_line(exc)}); nothing was "
                "committed to the target: run the command again",
                detail=_first_line(exc),
            ) from None
        raise LLMConfigError(
            f"The target refused a copied row ({_first_line(exc)}); nothing was committed to it"
        ) from None


def _first_line(exc: BaseException) -> str:
    message = str(getattr(exc, "orig", exc)).strip()
    return message.splitlines()[0] if message else type(exc).__name__


def _needs_schema(target: Engine, head: str) -> bool:
    """True for a target without any table; False at ``head``; refuses anything else."""
    revision = current_revision(target)
    if revision == head:
        return False
    if revision is not None:
        raise ConflictError(
            f"The target database is at schema revision {revision}, not {head} like the source; copy only into "
            "a new database, or into one migrated by this version of llmconfig (`llmconfig migrate` with "
            "LLMCONFIG_DATABASE_URL set to the target)"
        )
    with target.connect() as connection:
        tables = inspect(connection).get_table_names()
    if tables:
        raise ConflictError(
            f"The target database has tables ({', '.join(sorted(tables)[:5])}) but no llmconfig schema; "
            "copy only into a new, empty database"
        )
    return True


def _refuse_data(target: Engine, url: URL) -> None:
    """Refuse a target holding rows beyond those a fresh migration inserts, naming the first such table."""
    with _target_errors(url), target.connect() as connection:
        counts = _row_counts(connection)
    fresh = _fresh_row_counts()
    for name, rows in counts.items():
        if rows > fresh.get(name, 0):
            baseline = f" (a new database has {fresh[name]})" if fresh.get(name) else ""
            raise ConflictError(
                f"The target database is not empty: table {name} has {rows} row(s){baseline}. Nothing was "
                "copied; give the URL of a new, empty database"
            )


def _row_counts(connection: Connection) -> dict[str, int]:
    return {
        table.name: connection.scalar(select(func.count()).select_from(table)) or 0
        for table in Base.metadata.sorted_tables
    }


def _fresh_row_counts() -> dict[str, int]:
    """The rows of each table in a database just migrated to head (built in a throwaway SQLite file)."""
    with tempfile.TemporaryDirectory(prefix="llmconfig-copy-") as directory:
        engine = create_db_engine(f"sqlite:///{Path(directory) / 'fresh.db'}")
        try:
            upgrade_to_head(engine)
            with engine.connect() as connection:
                return _row_counts(connection)
        finally:
            engine.dispose()


# -- the copy --------------------------------------------------------------------------------------------


@contextmanager
def _snapshot(source: Engine) -> Iterator[Connection]:
    """One read transaction on the source, so that every table is read as of the same moment."""
    with outages_mapped(source.url), source.connect() as connection:
        if source.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            yield connection


@contextmanager
def _one_transaction(target: Engine) -> Iterator[Connection]:
    with target.connect() as connection, connection.execution_options(**{WRITE_OPTION: True}).begin():
        yield connection


def _clear(writing: Connection) -> list[Table]:
    """Delete the rows the migrations inserted, so that the target ends up with exactly the source's rows."""
    tables = list(Base.metadata.sorted_tables)
    for table in reversed(tables):
        writing.execute(table.delete())
    return tables


def _copy_table(
    table: Table,
    reading: Connection,
    writing: Connection,
    *,
    backend: SecretBackend | None,
    stored: list[str],
    batch_size: int,
) -> TableCopy:
    keys = [column.key for column in table.columns]
    sent = _Checksum()
    result = reading.execute(select(table).execution_options(yield_per=batch_size))
    for batch in result.partitions():
        rows = [dict(zip(keys, row, strict=True)) for row in batch]
        if backend is not None and table is _KEY_REFERENCE.table:
            _restore_keys(rows, backend, stored)
        for row in rows:
            for key, value in row.items():
                if isinstance(value, datetime):  # stored as given: SQLite keeps no offset
                    row[key] = _utc(value)
            sent.add(row, keys)
        writing.execute(table.insert(), rows)
    received = table_checksum(writing, table, batch_size=batch_size)
    if (received.rows, received.checksum) != (sent.rows, sent.hexdigest()):
        raise LLMConfigError(
            f"Table {table.name}: the target holds {received.rows} row(s) with checksum {received.checksum[:12]}…, "
            f"but {sent.rows} row(s) with checksum {sent.hexdigest()[:12]}… were copied; nothing was committed"
        )
    return received


def _restore_keys(rows: list[dict[str, Any]], backend: SecretBackend, stored: list[str]) -> None:
    from llmconfig.secrets.maintenance import restore_in, stored_in

    for row in rows:
        reference = row[_KEY_REFERENCE.key]
        if reference is None or stored_in(backend, reference):
            continue
        owner = row[_KEY_OWNER.key]
        try:
            row[_KEY_REFERENCE.key] = restore_in(backend, reference, owner=owner, slot=row[_KEY_ID.key])
        except SecretBackendError as exc:
            raise type(exc)(
                f"Cannot store an API key of provider {owner!r} in the {backend.name!r} backend, "
                f"so nothing was copied: {exc}"
            ) from None
        stored.append(row[_KEY_REFERENCE.key])


def _advance_sequences(writing: Connection) -> None:
    """On PostgreSQL, move each id sequence past the copied ids, so that the next insert does not collide."""
    if writing.dialect.name != "postgresql":
        return  # SQLite numbers new rows from the largest id present
    for table in Base.metadata.sorted_tables:
        column = table.autoincrement_column
        if column is None:
            continue
        sequence = writing.scalar(
            text("SELECT pg_get_serial_sequence(:table, :column)"), {"table": table.name, "column": column.name}
        )
        if sequence is None:
            continue
        highest = writing.scalar(select(func.max(column))) or 0
        writing.execute(select(func.setval(sequence, highest + 1, False)))


# -- checksums -------------------------------------------------------------------------------------------


def table_checksum(connection: Connection, table: Table, *, batch_size: int = DEFAULT_BATCH_SIZE) -> TableCopy:
    """Row count and checksum of ``table`` as ``connection`` sees it, read in batches.

    The checksum does not depend on the order of the rows, nor on how the backend represents a value:
    timestamps are compared as UTC instants, booleans as booleans, JSON as its parsed value, floats by
    their exact binary value.
    """
    keys = [column.key for column in table.columns]
    checksum = _Checksum()
    result = connection.execute(select(table).execution_options(yield_per=batch_size))
    for batch in result.partitions():
        for row in batch:
            checksum.add(dict(zip(keys, row, strict=True)), keys)
    return TableCopy(table=table.name, rows=checksum.rows, checksum=checksum.hexdigest())


class _Checksum:
    """The sum, modulo 2**256, of the SHA-256 of each row's normalised values: independent of row order."""

    def __init__(self) -> None:
        self.rows = 0
        self._sum = 0

    def add(self, row: Mapping[str, Any], keys: Sequence[str]) -> None:
        encoded = json.dumps([_normalised(row[key]) for key in keys], separators=(",", ":"), sort_keys=True)
        self._sum = (self._sum + int.from_bytes(hashlib.sha256(encoded.encode()).digest())) % 2**256
        self.rows += 1

    def hexdigest(self) -> str:
        return f"{self._sum:064x}"


def _normalised(value: Any) -> Any:
    if isinstance(value, datetime):
        return _utc(value).isoformat(timespec="microseconds")
    if isinstance(value, float):
        return float.hex(value)  # exact, and never confused with an integer column's value
    if isinstance(value, Decimal):
        return str(value.normalize())
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {key: _normalised(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_normalised(item) for item in value]
    return value


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
