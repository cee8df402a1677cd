"""Storage: typed models, engine and session handling, and the Alembic migrations shipped in the package."""

from llmconfig.db.engine import create_db_engine, make_sessionmaker, transaction
from llmconfig.db.migrate import upgrade_to_head

__all__ = ["create_db_engine", "make_sessionmaker", "transaction", "upgrade_to_head"]
