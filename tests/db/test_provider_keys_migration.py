"""Migration 0007: every provider's key moves into provider_keys, and back on downgrade (SQLite, PostgreSQL)."""

from __future__ import annotations

import os
from typing import Any

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from llmconfig.db import create_db_engine
from llmconfig.db.migrate import MIGRATIONS_DIR, alembic_config
from llmconfig.secrets import LocalSecretBackend

REVISION = "0007_provider_keys"
KEYED = "0f6d1c2a-1111-4c2b-9a55-0c7b3f0e1a11"
KEYLESS = "0f6d1c2a-2222-4c2b-9a55-0c7b3f0e1a11"
API_KEY = "sk-canary-migrated-key-5e2a7c"


def previous_revision() -> str:
    """The revision 0007 follows (read from the script, so that the test follows the chain as it is)."""
    down = ScriptDirectory(str(MIGRATIONS_DIR)).get_revision(REVISION).down_revision
    assert isinstance(down, str)
    return down


def columns(engine: object, table: str) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns(table)}  # type: ignore[arg-type]


def referring(engine: Any) -> tuple[int, list[tuple[str, str]]]:
    """How many catalog entries there are, and the global entries with their providers."""
    with engine.connect() as connection:
        models = connection.execute(text("SELECT count(*) FROM provider_models")).scalar_one()
        entries = connection.execute(text("SELECT interaction_type, provider_id FROM global_configs")).all()
    return models, [tuple(row) for row in entries]


def test_0007_moves_each_key_into_provider_keys_and_downgrade_moves_the_first_back(database_url: str) -> None:
    backend = LocalSecretBackend(os.urandom(32))
    reference = backend.store(owner=KEYED, value=API_KEY)
    engine = create_db_engine(database_url)
    config = alembic_config(engine)
    try:
        command.upgrade(config, previous_revision())
        with engine.begin() as connection:
            for provider_id, name, ref, hint in (
                (KEYED, "keyed", reference, API_KEY[-4:]),
                (KEYLESS, "bare", None, None),
            ):
                connection.execute(
                    text(
                        "INSERT INTO providers (id, name, provider_type, api_base_url, api_key_ref, api_key_hint, "
                        "enabled, validation_status, version, created_at, updated_at) VALUES (:id, :name, 'custom', "
                        "'http://127.0.0.1:9/v1', :ref, :hint, true, 'never', 3, :at, :at)"
                    ),
                    {"id": provider_id, "name": name, "ref": ref, "hint": hint, "at": "2026-01-01T00:00:00+00:00"},
                )
            # What refers to a provider must come through untouched (a rebuild of the table would lose it).
            connection.execute(
                text(
                    "INSERT INTO provider_models (provider_id, model_name, kind, discovered_at) "
                    "VALUES (:id, 'gpt-4o', 'chat', '2026-01-01T00:00:00+00:00')"
                ),
                {"id": KEYED},
            )
            connection.execute(
                text(
                    "INSERT INTO global_configs (interaction_type, provider_id, model_name, extra_params, fallbacks, "
                    "version, created_at, updated_at) VALUES ('reasoning', :id, 'gpt-4o', '{}', '[]', 1, :at, :at)"
                ),
                {"id": KEYED, "at": "2026-01-01T00:00:00+00:00"},
            )

        command.upgrade(config, REVISION)

        assert {"api_key_ref", "api_key_hint"}.isdisjoint(columns(engine, "providers"))
        assert "key_hint" in columns(engine, "usage_records")
        with engine.connect() as connection:
            moved = connection.execute(text("SELECT id, provider_id, secret_ref, hint FROM provider_keys")).all()
            versions = dict(connection.execute(text("SELECT name, version FROM providers")).all())
        assert [(row.provider_id, row.secret_ref, row.hint) for row in moved] == [(KEYED, reference, API_KEY[-4:])]
        # The reference is bound to the provider, not to the row: it still decrypts where it now lives.
        assert backend.load(moved[0].secret_ref, owner=moved[0].provider_id) == API_KEY
        assert versions == {"keyed": 3, "bare": 3}
        assert referring(engine) == (1, [("reasoning", KEYED)])

        second = backend.store(owner=KEYED, value="sk-canary-second-key-91b3")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO provider_keys (id, provider_id, secret_ref, hint, created_at) "
                    "VALUES ('k-2', :provider, :ref, '91b3', :at)"
                ),
                {"provider": KEYED, "ref": second, "at": "2026-06-01T00:00:00+00:00"},
            )

        command.downgrade(config, previous_revision())

        assert "provider_keys" not in inspect(engine).get_table_names()
        assert "key_hint" not in columns(engine, "usage_records")
        with engine.connect() as connection:
            rows = dict(
                (row.name, (row.api_key_ref, row.api_key_hint))
                for row in connection.execute(text("SELECT name, api_key_ref, api_key_hint FROM providers"))
            )
        assert rows == {"keyed": (reference, API_KEY[-4:]), "bare": (None, None)}
        assert referring(engine) == (1, [("reasoning", KEYED)])
    finally:
        engine.dispose()
