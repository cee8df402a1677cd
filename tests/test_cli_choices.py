"""Options with a fixed set of values are Typer choices: ``--help`` lists them, anything else is a usage error."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from llmconfig.cli.common import ProviderTypeChoice, RoleChoice, SecretBackendChoice
from llmconfig.providers.schemas import ProviderType
from llmconfig.settings import Settings
from llmconfig.tokens import Role
from tests.cli_helpers import Cli, assert_usage_error


def test_each_choice_lists_exactly_the_values_the_domain_accepts() -> None:
    assert [choice.value for choice in ProviderTypeChoice] == list(get_args(ProviderType))
    assert [choice.value for choice in RoleChoice] == list(get_args(Role))
    backends = get_args(Settings.model_fields["secret_backend"].annotation)
    assert [choice.value for choice in SecretBackendChoice] == list(backends)


CASES = [
    pytest.param(
        ["providers", "add", "x", "--type", "gemini", "--base-url", "http://127.0.0.1:9/v1"],
        "--type",
        "gemini",
        ["openai", "anthropic", "custom"],
        id="providers add --type",
    ),
    pytest.param(
        ["tokens", "create", "--role", "owner"], "--role", "owner", ["admin", "viewer", "client"], id="tokens --role"
    ),
    pytest.param(["secrets", "migrate", "--to", "vault"], "--to", "vault", ["local", "aws"], id="secrets --to"),
    pytest.param(
        ["db", "copy", "--to", "sqlite:///copy.db", "--secret-backend", "vault"],
        "--secret-backend",
        "vault",
        ["local", "aws"],
        id="db copy --secret-backend",
    ),
]


@pytest.mark.parametrize(("argv", "option", "value", "choices"), CASES)
def test_a_value_outside_the_choices_is_a_usage_error_and_touches_nothing(
    tmp_path: Path, argv: list[str], option: str, value: str, choices: list[str]
) -> None:
    cli = Cli(database_url=f"sqlite:///{tmp_path}/llmconfig.db", master_key_file=tmp_path / "k.key", cwd=tmp_path)
    command = argv[: argv.index(option)]

    refused, usage = cli.many(argv, [*command, "--help"])

    assert_usage_error(refused, option, value, choices)
    assert usage.returncode == 0, str(usage)
    assert f"<{'|'.join(choices)}>" in usage.stdout, str(usage)
    assert sorted(path.name for path in tmp_path.iterdir()) == []  # no database file, no master key file
