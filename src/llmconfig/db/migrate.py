"""Run the Alembic migrations that ship inside the package, without an ``alembic.ini``.

Alembic is imported only where migrations run: every CLI command checks the schema's revision first, and
importing Alembic would add a fifth to their start-up time.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, Select, String, column, inspect, select, table

from llmconfig.db.engine import outages_mapped

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Alembic announces each of its plugins at INFO when it is first imported; `serve` logs at INFO, and an
# operator reading its start-up output needs the migrations it ran, not Alembic's internals.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
# Alembic's bookkeeping table: one row holding the revision the schema is at.
VERSION_TABLE = "alembic_version"
_VERSION: Select[str] = select(column("version_num", String)).select_from(table(VERSION_TABLE))


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade_to_head(engine: Engine) -> None:
    """Bring the schema to the latest revision; safe to call on every start."""
    from alembic import command

    with outages_mapped(engine.url):
        command.upgrade(alembic_config(engine), "head")


def downgrade_to_base(engine: Engine) -> None:
    from alembic import command

    command.downgrade(alembic_config(engine), "base")


def head_revision() -> str:
    """The newest migration shipped in the package.

    Revisions are named after their files, which are numbered in order (``0004_wider_audit_target``), so
    the newest is the largest name; tests/db/test_migrations.py checks this against Alembic's own answer.
    """
    return max(path.stem for path in (MIGRATIONS_DIR / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with outages_mapped(engine.url), engine.connect() as connection:
        if not inspect(connection).has_table(VERSION_TABLE):
            return None
        return connection.execute(_VERSION).scalar()
