"""The AWS Secrets Manager backend against a real moto_server on loopback."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable

import boto3
import pytest

from llmconfig.errors import SecretBackendError
from llmconfig.secrets import AwsSecretBackend, SecretBackend, make_secret_backend
from llmconfig.settings import Settings

API_KEY = "sk-aws-test-0123456789SECRET"


@pytest.fixture
def aws_settings(settings_factory: Callable[..., Settings], moto_endpoint: str) -> Settings:
    # A prefix per test keeps the tests independent on the shared session server.
    return settings_factory(
        secret_backend="aws",
        aws_endpoint_url=moto_endpoint,
        aws_secret_prefix=f"llmconfig-{uuid.uuid4().hex[:8]}/",
    )


@pytest.fixture
def backend(aws_settings: Settings) -> SecretBackend:
    return make_secret_backend(aws_settings)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: connecting to it is refused at once


def owner() -> str:
    return str(uuid.uuid4())


def test_make_secret_backend_builds_the_aws_backend(backend: SecretBackend) -> None:
    assert isinstance(backend, AwsSecretBackend)
    assert backend.name == "aws"
    backend.check()


def test_round_trip_and_reference_format(backend: SecretBackend, aws_settings: Settings) -> None:
    provider = owner()
    reference = backend.store(owner=provider, value=API_KEY)
    assert reference == f"aws:{aws_settings.aws_secret_prefix}providers/{provider}"
    assert API_KEY not in reference
    assert backend.load(reference, owner=provider) == API_KEY


def test_secret_really_lives_in_secrets_manager(backend: SecretBackend, aws_settings: Settings) -> None:
    provider = owner()
    reference = backend.store(owner=provider, value=API_KEY)
    client = boto3.client(
        "secretsmanager", region_name=aws_settings.aws_region, endpoint_url=aws_settings.aws_endpoint_url
    )
    stored = client.get_secret_value(SecretId=reference.removeprefix("aws:"))
    assert stored["SecretString"] == API_KEY


def test_storing_again_updates_the_existing_secret(backend: SecretBackend) -> None:
    provider = owner()
    first = backend.store(owner=provider, value="sk-old")
    second = backend.store(owner=provider, value="sk-new")
    assert first == second
    assert backend.load(second, owner=provider) == "sk-new"


def test_delete_is_idempotent(backend: SecretBackend) -> None:
    provider = owner()
    reference = backend.store(owner=provider, value=API_KEY)
    backend.delete(reference)
    backend.delete(reference)
    backend.delete(f"aws:never-created/providers/{owner()}")
    with pytest.raises(SecretBackendError, match="no secret named"):
        backend.load(reference, owner=provider)


def test_store_after_delete_creates_the_secret_again(backend: SecretBackend) -> None:
    provider = owner()
    backend.delete(backend.store(owner=provider, value="sk-first"))
    reference = backend.store(owner=provider, value="sk-second")
    assert backend.load(reference, owner=provider) == "sk-second"


def test_reference_of_another_owner_is_refused(backend: SecretBackend) -> None:
    reference = backend.store(owner=owner(), value=API_KEY)
    with pytest.raises(SecretBackendError, match="another provider") as caught:
        backend.load(reference, owner=owner())
    assert API_KEY not in str(caught.value)


def test_reference_of_the_local_backend_is_refused_naming_it(backend: SecretBackend) -> None:
    with pytest.raises(SecretBackendError, match="'local'"):
        backend.load("local:v1:AAAA", owner=owner())


def test_unreachable_endpoint_is_a_secret_backend_error(
    settings_factory: Callable[..., Settings], aws_credentials: None
) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    backend = make_secret_backend(settings_factory(secret_backend="aws", aws_endpoint_url=endpoint, request_timeout=2))
    for operation in (
        backend.check,
        lambda: backend.store(owner=owner(), value=API_KEY),
        lambda: backend.load(f"aws:llmconfig/providers/{(o := owner())}", owner=o),
        lambda: backend.delete("aws:llmconfig/providers/x"),
    ):
        with pytest.raises(SecretBackendError) as caught:
            operation()
        message = str(caught.value)
        assert endpoint in message
        assert "us-east-1" in message
        assert API_KEY not in message
        assert "\n" not in message
