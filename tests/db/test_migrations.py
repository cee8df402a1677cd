from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from llmconfig.db import create_db_engine, upgrade_to_head
from llmconfig.db.engine import make_sessionmaker
from llmconfig.db.migrate import current_revision, downgrade_to_base, head_revision
from llmconfig.db.models import Base, InteractionType


def test_upgrade_creates_schema_and_builtin_types_and_is_repeatable(database_url: str) -> None:
    engine = create_db_engine(database_url)
    try:
        assert current_revision(engine) is None
        upgrade_to_head(engine)
        upgrade_to_head(engine)  # a second start must be a no-op
        assert current_revision(engine) == head_revision()
        tables = set(inspect(engine).get_table_names())
        assert {"providers", "provider_models", "interaction_types", "global_configs", "user_configs"} <= tables
        with make_sessionmaker(engine)() as session:
            kinds = dict(session.execute(select(InteractionType.name, InteractionType.kind)).all())
        assert kinds == {
            "reasoning": "chat",
            "tools": "chat",
            "subagents": "chat",
            "planning": "chat",
            "embeddings": "embeddings",
        }
    finally:
        engine.dispose()


def test_models_match_the_migrations(database_url: str) -> None:
    engine = create_db_engine(database_url)
    try:
        upgrade_to_head(engine)
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_downgrade_removes_everything(database_url: str) -> None:
    engine = create_db_engine(database_url)
    try:
        upgrade_to_head(engine)
        downgrade_to_base(engine)
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()


def test_head_revision_is_alembics_head_and_current_revision_reads_what_alembic_wrote(database_url: str) -> None:
    from alembic.script import ScriptDirectory

    from llmconfig.db.migrate import MIGRATIONS_DIR

    assert head_revision() == ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    engine = create_db_engine(database_url)
    try:
        upgrade_to_head(engine)
        with engine.connect() as connection:
            assert current_revision(engine) == MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
