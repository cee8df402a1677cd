"""``llmconfig db copy``: a whole database carried to a new one, run as the installed command in a subprocess.

The source is filled in-process through the services (providers with keys, a custom interaction type,
global entries with history, a user override, tokens, a price, usage records from real calls to the
loopback peers); what is under test goes through the command, and the target is then used by a library
process like any agent's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from pydantic import SecretStr
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from llmconfig import LLMConfigService
from llmconfig.config.schemas import ConfigUpdate, FallbackTarget, InteractionTypeCreate
from llmconfig.db.engine import create_db_engine
from llmconfig.db.migrate import alembic_config, current_revision, head_revision, upgrade_to_head
from llmconfig.db.models import Base, Provider, ProviderKey
from llmconfig.db_copy import table_checksum
from llmconfig.providers.schemas import ProviderKeyCreate
from llmconfig.settings import Settings
from llmconfig.tokens import TokenService
from llmconfig.usage.service import PriceUpdate
from tests.cli_helpers import (
    Cli,
    assert_one_line_error,
    assert_secrets_absent,
    assert_succeeded,
    concurrently,
    stored_bytes,
)
from tests.helpers import ANTHROPIC_PEER_KEY, OPENAI_PEER_KEY, add_peer_providers, free_tcp_port
from tests.peers import AnthropicPeer, OpenAIPeer

SECOND_KEY = "sk-canary-second-openai-4c1d8e2f"
KEYS = (OPENAI_PEER_KEY, ANTHROPIC_PEER_KEY, SECOND_KEY)
TABLES = [table.name for table in Base.metadata.sorted_tables]


def _conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Makes empty databases: ``new_database("sqlite")`` a file path, ``new_database("postgresql")`` a database."""
    created: list[tuple[str, str]] = []

    def make(kind: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{tmp_path}/{uuid.uuid4().hex[:8]}.db"
        server: str = request.getfixturevalue("postgres_url")
        name = f"llmconfig_copy_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(_conninfo(server), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append((server, name))
        return make_url(server).set(database=name).render_as_string(hide_password=False)

    yield make
    for server, name in created:
        with psycopg.connect(_conninfo(server), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def open_service(
    tmp_path: Path, settings_factory: Callable[..., Settings]
) -> Iterator[Callable[[str], LLMConfigService]]:
    """In-process services on a database (migrated if empty), with the master key the command uses."""
    opened: list[LLMConfigService] = []

    def make(url: str) -> LLMConfigService:
        svc = LLMConfigService(
            settings_factory(database_url=url, master_key_file=tmp_path / "llmconfig.key", cache_ttl=0)
        )
        if current_revision(svc.engine) is None:
            upgrade_to_head(svc.engine)
        opened.append(svc)
        return svc

    yield make
    for svc in opened:
        svc.close()


def command(source_url: str, tmp_path: Path) -> Cli:
    return Cli(database_url=source_url, master_key_file=tmp_path / "llmconfig.key", cwd=tmp_path)


def fill(source: LLMConfigService, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer) -> dict[str, str]:
    """Everything a database can hold; returns the plaintext tokens made."""
    add_peer_providers(source, openai_peer, anthropic_peer)
    source.types.add(InteractionTypeCreate(name="summaries", kind="chat", description="short"))
    source.config.set_global("reasoning", ConfigUpdate(provider_id="local", model_name="gpt-4o"), actor="t")
    source.config.set_global(
        "reasoning",
        ConfigUpdate(
            provider_id="local",
            model_name="local-chat",
            temperature=0.3,
            extra_params={"top_p": 0.25, "stop": ["END"]},
            fallbacks=[FallbackTarget(provider_id="claude", model_name="claude-haiku-4-5")],
        ),
        actor="t",
    )
    source.config.set_global("tools", ConfigUpdate(provider_id="claude", model_name="claude-haiku-4-5"), actor="t")
    source.config.set_global(
        "embeddings", ConfigUpdate(provider_id="local", model_name="text-embedding-3-small"), actor="t"
    )
    source.config.set_global("summaries", ConfigUpdate(provider_id="local", model_name="gpt-4o-mini"), actor="t")
    source.config.set_override(
        "u-42", "reasoning", ConfigUpdate(provider_id="claude", model_name="claude-sonnet-4-5"), actor="t"
    )
    source.usage.set_price("local-chat", PriceUpdate(input_per_million=0.5, output_per_million=1.5), actor="t")
    tokens = TokenService(sessions=source.sessions)
    admin, _ = tokens.create(role="admin", name="ops", actor="t")
    viewer, _ = tokens.create(role="viewer", name="dashboards", actor="t")
    tokens.revoke("dashboards", actor="t")
    # Usage records from real calls.
    source.get_llm("reasoning").invoke("hi")
    source.get_llm("reasoning", user_id="u-42").invoke("hi")
    source.get_embeddings().embed_query("x")
    assert source.usage_recorder.flush(timeout=10)
    return {"admin": admin, "viewer": viewer}


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table.name: connection.scalar(select(func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables
        }


def checksums(engine: Engine) -> dict[str, tuple[int, str]]:
    with engine.connect() as connection:
        return {
            table.name: (copied.rows, copied.checksum)
            for table in Base.metadata.sorted_tables
            for copied in [table_checksum(connection, table)]
        }


def as_seen_by_services(svc: LLMConfigService) -> dict[str, Any]:
    """What the services tell about a database, as JSON values."""

    def dump(value: Any) -> Any:
        return json.loads(json.dumps(value, default=lambda model: model.model_dump(mode="json")))

    return dump(
        {
            "providers": svc.providers.list(),
            "catalogs": {p.name: svc.providers.catalog(p.name) for p in svc.providers.list()},
            "types": svc.types.list(),
            "global": svc.config.get_global(),
            "overrides": svc.config.overrides("u-42"),
            "history": svc.config.history("reasoning"),
            "audit": svc.audit.entries(limit=1000),
            "prices": svc.usage.prices(),
            "usage": svc.usage.report(group_by=["interaction_type", "user", "model"]),
            "tokens": TokenService(sessions=svc.sessions).list(),
            "revision": svc.resolver.revision(),
        }
    )


LIBRARY_SCRIPT = """
import json, llmconfig
print(llmconfig.get_llm("reasoning").invoke("hi").content)
print(llmconfig.get_llm("reasoning", user_id="u-42").invoke("hi").content)
print(llmconfig.get_llm("tools").invoke("hi").content)
print(json.dumps(llmconfig.get_embeddings().embed_query("x")))
"""


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("source_kind", "target_kind"),
    [("sqlite", "postgresql"), ("postgresql", "sqlite")],
    ids=["sqlite-to-postgresql", "postgresql-to-sqlite"],
)
def test_copy_carries_every_table_and_the_target_serves_the_same_models_with_the_same_keys(
    source_kind: str,
    target_kind: str,
    new_database: Callable[[str], str],
    open_service: Callable[[str], LLMConfigService],
    tmp_path: Path,
    openai_peer: OpenAIPeer,
    anthropic_peer: AnthropicPeer,
) -> None:
    source_url, target_url = new_database(source_kind), new_database(target_kind)
    source = open_service(source_url)
    tokens = fill(source, openai_peer, anthropic_peer)
    before = as_seen_by_services(source)
    counts, sums = row_counts(source.engine), checksums(source.engine)
    assert counts["usage_records"] == 3 and counts["user_configs"] == 1 and counts["audit_entries"] > 5
    cli = command(source_url, tmp_path)

    text_run = cli.run("db", "copy", "--to", target_url, "--batch-size", "2")

    # Progress: one line per table, in dependency order, then the summary.
    lines = [line.split() for line in text_run.stdout.splitlines() if line.startswith("  ")]
    assert [(line[0], int(line[1].replace(",", ""))) for line in lines] == [(name, counts[name]) for name in TABLES]
    assert f"Copied {sum(counts.values())} row(s) in {len(TABLES)} tables" in text_run.stdout
    assert "migrated it to" in text_run.stdout  # the target had no schema
    assert text_run.stderr == ""

    target = open_service(target_url)
    assert current_revision(target.engine) == head_revision()
    assert row_counts(target.engine) == counts
    assert checksums(target.engine) == sums  # computed apart from the command, on each side
    assert as_seen_by_services(target) == before
    assert source.providers.list() == target.providers.list() and row_counts(source.engine) == counts
    assert TokenService(sessions=target.sessions).authenticate(tokens["admin"]) is not None
    assert TokenService(sessions=target.sessions).authenticate(tokens["viewer"]) is None  # revoked stays revoked

    # An agent process on the target: the same models, called with the same (decrypted) keys.
    openai_peer.requests.clear()
    anthropic_peer.requests.clear()
    app = cli.python(LIBRARY_SCRIPT, env={"LLMCONFIG_DATABASE_URL": target_url})
    reasoning, override, tools, vector = app.stdout.splitlines()
    assert (reasoning, override, tools) == (
        "Hello from openai-peer",
        "Hello from anthropic-peer",
        "Hello from anthropic-peer",
    )
    assert json.loads(vector) == pytest.approx(openai_peer.embedding_for("x"))
    chat = openai_peer.requests_to("/v1/chat/completions")[-1]
    assert (chat.json["model"], chat.json["temperature"], chat.json["top_p"]) == ("local-chat", 0.3, 0.25)
    assert chat.headers["authorization"] == f"Bearer {OPENAI_PEER_KEY}"
    messages = anthropic_peer.requests_to("/v1/messages")
    assert [request.json["model"] for request in messages] == ["claude-sonnet-4-5", "claude-haiku-4-5"]
    # The provider's key pool sends Anthropic's key as x-api-key (see llmconfig.providers.keys).
    assert all(request.headers["x-api-key"] == ANTHROPIC_PEER_KEY for request in messages)

    # New rows on the target get ids past the copied ones (PostgreSQL: the sequences were advanced).
    highest = {
        name: _max_id(target.engine, name)
        for name in ("user_configs", "audit_entries", "usage_records", "provider_models")
    }
    usage_before = row_counts(target.engine)["usage_records"]  # the library process above recorded its calls
    target.config.set_override("u-7", "tools", ConfigUpdate(provider_id="local", model_name="gpt-4o"), actor="t")
    target.providers.validate("local")  # replaces the catalog: new provider_models rows
    target.get_llm("tools", user_id="u-7").invoke("hi")
    assert target.usage_recorder.flush(timeout=10)
    for name, before_max in highest.items():
        assert _max_id(target.engine, name) > before_max, name
    assert row_counts(target.engine)["usage_records"] == usage_before + 1

    # No plaintext key anywhere in the target, nor in anything the command printed.
    stored = stored_bytes(target_url)
    assert b"local:v1:" in stored
    for key in KEYS:
        assert key.encode() not in stored
    assert_secrets_absent(cli.results, KEYS)


def _max_id(engine: Engine, table_name: str) -> int:
    table = Base.metadata.tables[table_name]
    with engine.connect() as connection:
        return connection.scalar(select(func.max(table.c.id))) or 0


def test_json_summary_names_every_table_with_its_rows_and_checksum(
    new_database: Callable[[str], str],
    open_service: Callable[[str], LLMConfigService],
    tmp_path: Path,
    openai_peer: OpenAIPeer,
    anthropic_peer: AnthropicPeer,
) -> None:
    source_url, target_url = new_database("sqlite"), new_database("sqlite")
    source = open_service(source_url)
    fill(source, openai_peer, anthropic_peer)
    sums = checksums(source.engine)

    report = command(source_url, tmp_path).run("db", "copy", "--to", target_url, "--json").json()

    assert report["tables"] == [{"table": name, "rows": sums[name][0], "checksum": sums[name][1]} for name in TABLES]
    assert report["total_rows"] == sum(rows for rows, _ in sums.values())
    assert (report["migrated_target"], report["schema_revision"]) == (True, head_revision())
    assert (report["secret_backend"], report["reencrypted_keys"]) == (None, 0)
    assert report["target"] == target_url


def test_a_target_holding_data_is_refused_by_name_and_left_unchanged(
    migrated_database_url: str,
    new_database: Callable[[str], str],
    open_service: Callable[[str], LLMConfigService],
    tmp_path: Path,
    openai_peer: OpenAIPeer,
    anthropic_peer: AnthropicPeer,
) -> None:
    source_url = new_database("sqlite")
    fill(open_service(source_url), openai_peer, anthropic_peer)
    target = open_service(migrated_database_url)
    cli = command(source_url, tmp_path)

    # One price of its own is enough to make the target not empty; so are providers.
    target.usage.set_price("my-model", PriceUpdate(input_per_million=1, output_per_million=2), actor="t")
    refused_price = cli.run("db", "copy", "--to", migrated_database_url, expect=None)
    assert_one_line_error(refused_price, "not empty", "table audit_entries has 1 row")
    add_peer_providers(target, openai_peer, anthropic_peer)
    before = checksums(target.engine)

    refused = cli.run("db", "copy", "--to", migrated_database_url, expect=None)

    assert_one_line_error(refused, "not empty", "table audit_entries has", "nothing was copied")
    assert checksums(target.engine) == before
    assert [p.name for p in target.providers.list()] == ["claude", "local"]


def test_bad_targets_get_one_line_errors_and_nothing_is_written(
    new_database: Callable[[str], str], open_service: Callable[[str], LLMConfigService], tmp_path: Path
) -> None:
    source_url = new_database("sqlite")
    source = open_service(source_url)
    source_file = make_url(source_url).database
    assert source_file is not None
    older = f"sqlite:///{tmp_path}/older.db"
    older_engine = create_db_engine(older)
    from alembic import command as alembic

    alembic.upgrade(alembic_config(older_engine), "0003_usage_and_prices")
    foreign = f"sqlite:///{tmp_path}/foreign.db"
    foreign_engine = create_db_engine(foreign)
    with foreign_engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
    sums = checksums(source.engine)
    files_before = database_files(tmp_path)
    cli = command(source_url, tmp_path)
    closed = free_tcp_port()

    cases = {
        "not a URL": (["--to", "not-a-url"], ["not a valid database URL"]),
        "unsupported backend": (["--to", "mysql://u@127.0.0.1/x"], ["'mysql'", "not supported"]),
        "unreachable server": (
            ["--to", f"postgresql+psycopg://u@127.0.0.1:{closed}/x"],
            ["cannot be used", f"127.0.0.1:{closed}", "server is running"],
        ),
        "missing directory": (["--to", f"sqlite:///{tmp_path}/missing/x.db"], ["directory exists"]),
        "the source itself": (["--to", source_url], ["is the database being copied"]),
        "the source, spelt otherwise": (
            ["--to", f"sqlite:///{tmp_path}/./{Path(source_file).name}"],
            ["is the database being copied"],
        ),
        "another schema revision": (["--to", older], ["revision 0003_usage_and_prices", head_revision()]),
        "not an llmconfig database": (["--to", foreign], ["no llmconfig schema", "notes"]),
        "batch size 0": (["--to", new_database("sqlite"), "--batch-size", "0"], None),
    }
    results = dict(
        zip(
            cases,
            concurrently(*(partial(cli.run, "db", "copy", *argv, expect=None) for argv, _ in cases.values())),
            strict=True,
        )
    )
    failures = []
    for name, (_, words) in cases.items():
        try:
            if words is None:
                assert results[name].returncode == 2, str(results[name])  # Typer's range check
            else:
                assert_one_line_error(results[name], *words)
        except AssertionError as exc:
            failures.append(f"[{name}] {exc}")
    assert not failures, "\n\n".join(failures)

    assert checksums(source.engine) == sums
    assert current_revision(older_engine) == "0003_usage_and_prices"
    with foreign_engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'").scalars().all() == [
            "notes"
        ]
    assert database_files(tmp_path) == files_before  # no new database, no key file
    older_engine.dispose()
    foreign_engine.dispose()


def database_files(directory: Path) -> list[str]:
    """The files in ``directory``, leaving out SQLite's WAL files (they come and go with connections)."""
    return sorted(path.name for path in directory.iterdir() if not path.name.endswith(("-wal", "-shm")))


def test_copy_before_migrate_tells_the_user_to_run_migrate(new_database: Callable[[str], str], tmp_path: Path) -> None:
    source_url, target_url = new_database("sqlite"), new_database("sqlite")

    result = command(source_url, tmp_path).run("db", "copy", "--to", target_url, expect=None)

    assert_one_line_error(result, "run `llmconfig migrate` first")
    assert not Path(make_url(target_url).database or "").exists()


def test_copy_into_another_secret_backend_stores_every_key_there(
    new_database: Callable[[str], str],
    open_service: Callable[[str], LLMConfigService],
    tmp_path: Path,
    moto_endpoint: str,
    openai_peer: OpenAIPeer,
    anthropic_peer: AnthropicPeer,
) -> None:
    source_url, target_url = new_database("sqlite"), new_database("sqlite")
    source = open_service(source_url)
    add_peer_providers(source, openai_peer, anthropic_peer)
    # A second key of one provider: each key is stored on its own, under its own secret.
    source.providers.keys.add("local", ProviderKeyCreate(api_key=SecretStr(SECOND_KEY)), actor="t")
    openai_peer.accepted_keys.add(SECOND_KEY)
    source.config.set_global("reasoning", ConfigUpdate(provider_id="local", model_name="gpt-4o"), actor="t")
    source.config.set_global("tools", ConfigUpdate(provider_id="claude", model_name="claude-haiku-4-5"), actor="t")
    source_refs = references(source.engine)
    aws = {"LLMCONFIG_AWS_ENDPOINT_URL": moto_endpoint, "LLMCONFIG_AWS_SECRET_PREFIX": f"copy-{uuid.uuid4().hex[:8]}/"}
    cli = command(source_url, tmp_path)

    report = cli.run("db", "copy", "--to", target_url, "--secret-backend", "aws", "--json", env=aws).json()

    assert (report["secret_backend"], report["reencrypted_keys"]) == ("aws", 3)
    target_engine = create_db_engine(target_url)
    target_refs = references(target_engine)
    target_engine.dispose()
    assert set(target_refs) == set(source_refs)
    assert all(ref.startswith("aws:") for ref in target_refs.values()), target_refs
    assert len(set(target_refs.values())) == 3
    assert references(source.engine) == source_refs  # the source keeps its own (local) references
    answer = cli.python(
        "import llmconfig\n"
        "print(llmconfig.get_llm('reasoning').invoke('hi').content)\n"
        "print(llmconfig.get_llm('reasoning').invoke('hi').content)\n"
        "print(llmconfig.get_llm('tools').invoke('hi').content)\n",
        env={**aws, "LLMCONFIG_DATABASE_URL": target_url, "LLMCONFIG_SECRET_BACKEND": "aws"},
    )
    assert answer.stdout.splitlines() == ["Hello from openai-peer"] * 2 + ["Hello from anthropic-peer"]
    assert openai_peer.keys_sent("/v1/chat/completions")[-2:] == [OPENAI_PEER_KEY, SECOND_KEY]
    stored = stored_bytes(target_url)
    assert b"aws:" in stored and b"local:v1:" not in stored
    for key in KEYS:
        assert key.encode() not in stored
    assert_secrets_absent(cli.results, KEYS)


def references(engine: Engine) -> dict[str, str]:
    """``provider name/key id`` -> the key's secret reference, for every key."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(Provider.name, ProviderKey.id, ProviderKey.secret_ref).join(
                ProviderKey, ProviderKey.provider_id == Provider.id
            )
        ).all()
    return {f"{name}/{key_id}": ref for name, key_id, ref in rows}


@pytest.mark.postgres
def test_a_row_the_target_refuses_rolls_the_whole_copy_back(
    new_database: Callable[[str], str],
    open_service: Callable[[str], LLMConfigService],
    tmp_path: Path,
    openai_peer: OpenAIPeer,
    anthropic_peer: AnthropicPeer,
) -> None:
    source_url, target_url = new_database("sqlite"), new_database("postgresql")
    source = open_service(source_url)
    add_peer_providers(source, openai_peer, anthropic_peer)
    # SQLite does not enforce VARCHAR lengths; PostgreSQL refuses the value. Usage comes late in the order,
    # so the tables before it have been written when the refusal comes.
    usage = Base.metadata.tables["usage_records"]
    with source.engine.begin() as connection:
        connection.execute(
            usage.insert(),
            [
                {"at": datetime.now(UTC), "interaction_type": "reasoning", "provider_name": "x" * 300,
                 "model_name": "gpt-4o", "prompt_tokens": 1, "completion_tokens": 1, "latency_ms": 1.0,
                 "success": True}
            ],
        )  # fmt: skip
    cli = command(source_url, tmp_path)

    refused = cli.run("db", "copy", "--to", target_url, expect=None)

    assert_one_line_error(refused, "target refused a copied row", "too long", "nothing was committed")
    target = open_service(target_url)
    assert current_revision(target.engine) == head_revision()  # migrated for the copy, and left so
    assert target.providers.list() == []
    assert row_counts(target.engine)["audit_entries"] == 0
    with source.engine.begin() as connection:
        connection.execute(usage.delete())
    assert_succeeded(cli.run("db", "copy", "--to", target_url))  # the migrated, empty target is accepted
    assert [p.name for p in target.providers.list()] == ["claude", "local"]
