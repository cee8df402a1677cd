"""Migration 0005: the type limit of API tokens comes and goes without touching the tokens."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from llmconfig.db import create_db_engine
from llmconfig.db.migrate import alembic_config

TOKEN = {
    "id": "t-1",
    "name": "old",
    "role": "viewer",
    "token_hash": "a" * 64,
    "token_prefix": "llmc_abcdefg",
    "created_at": "2026-01-01T00:00:00+00:00",
}


def columns(engine: object) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns("api_tokens")}  # type: ignore[arg-type]


def test_0005_adds_a_nullable_type_limit_and_removes_it_again(database_url: str) -> None:
    engine = create_db_engine(database_url)
    config = alembic_config(engine)
    try:
        command.upgrade(config, "0004_wider_audit_target")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO api_tokens (id, name, role, token_hash, token_prefix, created_at) "
                    "VALUES (:id, :name, :role, :token_hash, :token_prefix, :created_at)"
                ),
                TOKEN,
            )
        assert "interaction_types" not in columns(engine)

        command.upgrade(config, "0005_token_interaction_types")
        with engine.connect() as connection:
            row = connection.execute(text("SELECT name, interaction_types FROM api_tokens")).one()
        assert tuple(row) == ("old", None)

        command.downgrade(config, "0004_wider_audit_target")
        assert "interaction_types" not in columns(engine)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT name, role FROM api_tokens")).one() == ("old", "viewer")
    finally:
        engine.dispose()
