"""The hot read path's connection: no transaction around the cold path's statements on PostgreSQL."""

from __future__ import annotations

import psycopg
from sqlalchemy import text

from llmconfig import LLMConfigService
from llmconfig.config import ConfigUpdate
from llmconfig.db.engine import reading, unit_of_work
from tests.helpers import configure_reasoning
from tests.peers import OpenAIPeer


def test_reads_on_postgresql_run_outside_a_transaction_and_on_sqlite_inside_one(service: LLMConfigService) -> None:
    # On PostgreSQL a BEGIN and a ROLLBACK would be two round trips besides the statement itself.
    with reading(service.sessions) as connection:
        connection.execute(text("SELECT 1")).all()
        raw = connection.connection.dbapi_connection
        if connection.dialect.name == "postgresql":
            assert isinstance(raw, psycopg.Connection)
            assert raw.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        else:
            assert connection.in_transaction()
    # The pool hands the connection to writers afterwards as it always did: in a transaction of their own.
    with unit_of_work(service.sessions) as session:
        assert session.connection().get_isolation_level() != "AUTOCOMMIT"


def test_a_resolution_inside_a_write_sees_what_the_write_changed(
    service: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    configure_reasoning(service, openai_peer)
    with unit_of_work(service.sessions):
        service.config.set_global("reasoning", ConfigUpdate(provider_id="local", model_name="local-chat"), actor="t")
        resolution, _ = service.services.resolver.resolve("reasoning")
    assert resolution is not None and resolution.target.model_name == "local-chat"
