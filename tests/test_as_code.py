"""Configuration as code: export → apply reproduces the configuration; apply is idempotent and all-or-nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from llmconfig import LLMConfigService
from llmconfig.as_code import apply, export_yaml, key_variable, parse
from llmconfig.config import ConfigUpdate, FallbackTarget, InteractionTypeCreate
from llmconfig.config.schemas import VariantUpdate
from llmconfig.db.models import AuditEntry
from llmconfig.errors import ValidationError
from tests.helpers import ANTHROPIC_PEER_KEY, OPENAI_PEER_KEY, add_peer_providers
from tests.peers import AnthropicPeer, OpenAIPeer


def audit_count(service: LLMConfigService) -> int:
    with service.sessions() as session:
        return session.scalar(select(func.count()).select_from(AuditEntry)) or 0


@pytest.fixture
def configured(service: LLMConfigService, openai_peer: OpenAIPeer, anthropic_peer: AnthropicPeer) -> LLMConfigService:
    add_peer_providers(service, openai_peer, anthropic_peer)
    service.types.add(InteractionTypeCreate(name="summaries", kind="chat", description="Digests"))
    service.config.set_global(
        "reasoning",
        ConfigUpdate(
            provider_id="local",
            model_name="gpt-4o",
            temperature=0.7,
            max_tokens=400,
            extra_params={"top_p": 0.9},
            fallbacks=[FallbackTarget(provider_id="claude", model_name="claude-haiku-4-5")],
            weight=70,
            variants=[
                VariantUpdate(name="mini", provider_id="local", model_name="gpt-4o-mini", weight=30, fallbacks=[])
            ],
        ),
        actor="t",
    )
    service.config.set_global("summaries", ConfigUpdate(provider_id="claude", model_name="claude-haiku-4-5"), actor="t")
    service.config.set_global(
        "embeddings", ConfigUpdate(provider_id="local", model_name="text-embedding-3-small"), actor="t"
    )
    return service


def comparable(service: LLMConfigService) -> dict[str, Any]:
    names = {p.id: p.name for p in service.providers.list()}
    return {
        name: (
            names[e.provider_id],
            e.model_name,
            e.temperature,
            e.max_tokens,
            e.extra_params,
            [(names[f.provider_id], f.model_name) for f in e.fallbacks],
            e.weight,
            [(v.name, names[v.provider_id], v.model_name, v.weight, v.fallbacks) for v in e.variants],
        )
        for name, e in service.config.get_global().items()
    }


def test_export_has_no_key_and_names_the_variables(configured: LLMConfigService) -> None:
    text = export_yaml(configured)
    assert OPENAI_PEER_KEY not in text and ANTHROPIC_PEER_KEY not in text
    assert f"api_key_env: {key_variable('local')}" in text and "LLMCONFIG_KEY_CLAUDE" in text
    assert "summaries" in text and "reasoning:" not in text.split("interaction_types:")[1].split("config:")[0]


def test_export_then_apply_on_an_empty_database_reproduces_the_configuration(
    configured: LLMConfigService, settings_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = export_yaml(configured)
    monkeypatch.setenv("LLMCONFIG_KEY_LOCAL", OPENAI_PEER_KEY)
    monkeypatch.setenv("LLMCONFIG_KEY_CLAUDE", ANTHROPIC_PEER_KEY)
    fresh_settings = configured.settings.model_copy(
        update={"database_url": f"sqlite:///{tmp_path}/fresh.db", "master_key_file": tmp_path / "fresh.key"}
    )
    from llmconfig.db import upgrade_to_head

    fresh = LLMConfigService(fresh_settings)
    try:
        upgrade_to_head(fresh.engine)
        plan = apply(fresh, parse(text), actor="gitops")
        assert len(plan.changes) == 6  # 2 providers, 1 type, 3 entries
        assert comparable(fresh) == comparable(configured)
        assert export_yaml(fresh) == text
        # The keys came from the environment and work.
        assert fresh.get_llm("reasoning").invoke("hi").content == "Hello from openai-peer"
    finally:
        fresh.close()


def test_applying_the_same_file_twice_changes_nothing(
    configured: LLMConfigService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMCONFIG_KEY_LOCAL", OPENAI_PEER_KEY)
    parsed = parse(export_yaml(configured))
    before = audit_count(configured)
    assert apply(configured, parsed, actor="gitops").empty
    assert apply(configured, parsed, actor="gitops").empty
    assert audit_count(configured) == before


def test_a_change_is_shown_by_dry_run_and_made_by_apply(configured: LLMConfigService) -> None:
    text = export_yaml(configured).replace("temperature: 0.7", "temperature: 0.2")
    plan = apply(configured, parse(text), actor="gitops", dry_run=True)
    assert plan.changes == ["change reasoning: local / gpt-4o"]
    assert configured.config.get_entry("reasoning").temperature == 0.7

    assert apply(configured, parse(text), actor="gitops").changes == plan.changes
    assert configured.config.get_entry("reasoning").temperature == 0.2


def test_schema_errors_are_reported_with_their_lines() -> None:
    text = (
        "version: 1\nproviders:\n  - name: ok\n    type: cohere\n"
        "config:\n  reasoning:\n    provider: ok\n    temperature: 5\n"
    )
    with pytest.raises(ValidationError) as caught:
        parse(text, source="llm.yaml")
    message = str(caught.value)
    assert "llm.yaml: line 4: providers.0.type" in message
    assert "line 8: config.reasoning.temperature" in message
    assert "line 6: config.reasoning.model: Field required" in message


def test_yaml_syntax_errors_name_the_line() -> None:
    with pytest.raises(ValidationError, match="line 3: not valid YAML"):
        parse("version: 1\nproviders:\n  - name: a: b\n")


def test_an_invalid_file_is_rejected_whole(configured: LLMConfigService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEW_KEY", "sk-new-provider-key-123456")
    text = (
        "providers:\n"
        "  - name: extra\n    type: custom\n    base_url: http://127.0.0.1:9/v1\n    api_key_env: NEW_KEY\n"
        "config:\n"
        "  planning:\n    provider: local\n    model: gpt-4o\n"
        "  tools:\n    provider: local\n    model: no-such-model\n"
    )
    before = audit_count(configured)
    with pytest.raises(ValidationError, match="line 10: .*does not offer model 'no-such-model'"):
        apply(configured, parse(text), actor="gitops")
    assert audit_count(configured) == before
    assert "extra" not in {p.name for p in configured.providers.list()}
    assert "planning" not in configured.config.get_global()


def test_a_new_provider_without_its_key_variable_is_refused(
    configured: LLMConfigService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MISSING_KEY", raising=False)
    text = "providers:\n  - name: extra\n    type: openai\n    api_key_env: MISSING_KEY\n"
    with pytest.raises(ValidationError, match=r"line 2: .*\$MISSING_KEY"):
        apply(configured, parse(text), actor="gitops")


def test_cli_export_and_apply_round_trip(tmp_path: Path, openai_peer: OpenAIPeer) -> None:
    cli = str(Path(sys.executable).parent / "llmconfig")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMCONFIG_", "OPENAI_"))}
    env.update(LLMCONFIG_DATABASE_URL=f"sqlite:///{tmp_path}/a.db", LLMCONFIG_MASTER_KEY_FILE=str(tmp_path / "a.key"))
    env["LOCAL_KEY"] = OPENAI_PEER_KEY

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [cli, *args], env={**env, **extra}, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
        )

    assert run("migrate").returncode == 0
    assert (
        run(
            "providers",
            "add",
            "local",
            "--type",
            "custom",
            "--base-url",
            openai_peer.root_url,
            "--api-key-env",
            "LOCAL_KEY",
        ).returncode
        == 0
    )
    assert run("config", "set", "reasoning", "--provider", "local", "--model", "gpt-4o").returncode == 0
    exported = run("export", "--output", str(tmp_path / "llm.yaml"))
    assert exported.returncode == 0, exported.stderr
    assert OPENAI_PEER_KEY not in (tmp_path / "llm.yaml").read_text()

    other = {"LLMCONFIG_DATABASE_URL": f"sqlite:///{tmp_path}/b.db", "LLMCONFIG_KEY_LOCAL": OPENAI_PEER_KEY}
    assert run("migrate", **other).returncode == 0
    dry = run("apply", str(tmp_path / "llm.yaml"), "--dry-run", **other)
    assert dry.returncode == 0 and "create provider local" in dry.stdout and "Dry run" in dry.stdout
    applied = run("apply", str(tmp_path / "llm.yaml"), **other)
    assert applied.returncode == 0 and "Applied 2 change(s)" in applied.stdout
    assert "Nothing to change" in run("apply", str(tmp_path / "llm.yaml"), **other).stdout

    (tmp_path / "bad.yaml").write_text("providers:\n  - name: x\n    typo: custom\n")
    bad = run("apply", str(tmp_path / "bad.yaml"), **other)
    assert bad.returncode == 1 and "line 3" in bad.stderr and "Traceback" not in bad.stderr
