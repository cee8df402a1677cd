"""The local AES-256-GCM secret backend and its master key handling."""

from __future__ import annotations

import base64
import logging
import os
import stat
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from llmconfig.errors import SecretBackendError, SecretDecryptionError, SettingsError
from llmconfig.secrets import LocalSecretBackend, SecretBackend, make_secret_backend
from llmconfig.settings import Settings

OWNER = "5b0c3c2e-8d7e-4c2b-9a55-0c7b3f0e1a11"
OTHER_OWNER = "c1f8e9a4-1f0a-4a43-8d39-7d0b2a6a9c22"
API_KEY = "sk-test-0123456789abcdefSECRET"


def new_key() -> bytes:
    return os.urandom(32)


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_round_trip_returns_the_stored_value() -> None:
    backend = LocalSecretBackend(new_key())
    reference = backend.store(owner=OWNER, value=API_KEY)
    assert backend.load(reference, owner=OWNER) == API_KEY


def test_unicode_and_empty_values_survive_a_round_trip() -> None:
    backend = LocalSecretBackend(new_key())
    for value in ("", "ключ-🔑", "x" * 10_000):
        assert backend.load(backend.store(owner=OWNER, value=value), owner=OWNER) == value


def test_reference_is_self_contained_and_versioned() -> None:
    reference = LocalSecretBackend(new_key()).store(owner=OWNER, value=API_KEY)
    assert reference.startswith("local:v1:")
    blob = base64.urlsafe_b64decode(reference.removeprefix("local:v1:"))
    assert len(blob) == 12 + len(API_KEY.encode()) + 16  # nonce + ciphertext + GCM tag


def test_ciphertext_differs_per_call_and_contains_no_plaintext() -> None:
    backend = LocalSecretBackend(new_key())
    first = backend.store(owner=OWNER, value=API_KEY)
    second = backend.store(owner=OWNER, value=API_KEY)
    assert first != second
    for reference in (first, second):
        assert API_KEY not in reference
        assert API_KEY.encode() not in base64.urlsafe_b64decode(reference.removeprefix("local:v1:"))


def test_reference_copied_onto_another_owner_does_not_decrypt() -> None:
    backend = LocalSecretBackend(new_key())
    reference = backend.store(owner=OWNER, value=API_KEY)
    with pytest.raises(SecretDecryptionError):
        backend.load(reference, owner=OTHER_OWNER)


def test_wrong_master_key_raises_an_actionable_error_without_key_material() -> None:
    original, other = new_key(), new_key()
    reference = LocalSecretBackend(original).store(owner=OWNER, value=API_KEY)

    with pytest.raises(SecretDecryptionError) as caught:
        LocalSecretBackend(other).load(reference, owner=OWNER)

    message = str(caught.value)
    assert "master key" in message
    assert "LLMCONFIG_MASTER_KEY" in message
    for secret in (b64(original), b64(other), API_KEY, original.hex(), other.hex()):
        assert secret not in message
    assert "Traceback" not in message
    assert "InvalidTag" not in message
    # The cryptography exception is neither chained nor shown as context in a logged traceback.
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    rendered = "".join(traceback.format_exception(caught.value))
    assert "cryptography" not in rendered


def test_tampered_reference_raises_decryption_error() -> None:
    backend = LocalSecretBackend(new_key())
    reference = backend.store(owner=OWNER, value=API_KEY)
    blob = bytearray(base64.urlsafe_b64decode(reference.removeprefix("local:v1:")))
    blob[-1] ^= 0x01
    tampered = "local:v1:" + base64.urlsafe_b64encode(bytes(blob)).decode()
    with pytest.raises(SecretDecryptionError):
        backend.load(tampered, owner=OWNER)


@pytest.mark.parametrize("reference", ["local:v1:", "local:v1:not base64!", "local:v1:QUJD"])
def test_malformed_reference_raises_decryption_error(reference: str) -> None:
    with pytest.raises(SecretDecryptionError):
        LocalSecretBackend(new_key()).load(reference, owner=OWNER)


def test_reference_of_another_backend_is_refused_naming_that_backend() -> None:
    backend = LocalSecretBackend(new_key())
    with pytest.raises(SecretBackendError, match="'aws'") as caught:
        backend.load("aws:llmconfig/providers/" + OWNER, owner=OWNER)
    assert not isinstance(caught.value, SecretDecryptionError)


def test_unknown_format_version_is_refused() -> None:
    with pytest.raises(SecretBackendError, match="v9"):
        LocalSecretBackend(new_key()).load("local:v9:AAAA", owner=OWNER)


def test_delete_is_idempotent_and_check_passes() -> None:
    backend = LocalSecretBackend(new_key())
    reference = backend.store(owner=OWNER, value=API_KEY)
    backend.delete(reference)
    backend.delete(reference)
    backend.delete("local:v1:unknown")
    backend.check()


def test_backend_satisfies_the_protocol() -> None:
    backend: SecretBackend = LocalSecretBackend(new_key())
    assert backend.name == "local"


def test_master_key_from_settings_is_used(settings_factory: Callable[..., Settings]) -> None:
    key = new_key()
    settings = settings_factory(master_key=b64(key))
    reference = LocalSecretBackend(key).store(owner=OWNER, value=API_KEY)
    backend = make_secret_backend(settings)
    assert isinstance(backend, LocalSecretBackend)
    assert backend.load(reference, owner=OWNER) == API_KEY
    assert not settings.master_key_file.exists()


def test_url_safe_master_key_is_accepted(settings_factory: Callable[..., Settings]) -> None:
    key = bytes(range(224, 256))  # encodes with "+" and "/" in the standard alphabet
    url_safe = base64.urlsafe_b64encode(key).decode()
    backend = LocalSecretBackend.from_settings(settings_factory(master_key=url_safe))
    assert LocalSecretBackend(key).load(backend.store(owner=OWNER, value=API_KEY), owner=OWNER) == API_KEY


@pytest.mark.parametrize(
    ("master_key", "problem"),
    [
        ("not-base64-at-all!!", "not valid base64"),
        (base64.b64encode(b"short").decode(), "5 bytes instead of 32"),
        (base64.b64encode(os.urandom(64)).decode(), "64 bytes instead of 32"),
        ("   ", "empty"),
    ],
    # Fixed ids: the long key is random, and parallel workers must collect the same tests.
    ids=["not-base64", "too-short", "too-long", "blank"],
)
def test_malformed_master_key_is_a_settings_error_explaining_how_to_generate_one(
    settings_factory: Callable[..., Settings], master_key: str, problem: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        make_secret_backend(settings_factory(master_key=master_key))
    message = str(caught.value)
    assert problem in message
    assert "LLMCONFIG_MASTER_KEY" in message
    assert "base64.b64encode(os.urandom(32))" in message


def test_key_file_is_created_with_mode_0600_and_one_warning_naming_it(
    settings_factory: Callable[..., Settings], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys" / "llmconfig.key"
    caplog.set_level(logging.WARNING, logger="llmconfig.secrets")

    backend = LocalSecretBackend.from_settings(settings_factory(master_key_file=path))

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(base64.b64decode(path.read_text().strip(), validate=True)) == 32
    records = [r for r in caplog.records if r.name == "llmconfig.secrets" and r.levelno >= logging.WARNING]
    assert len(records) == 1
    assert str(path) in records[0].getMessage()
    assert "back it up" in records[0].getMessage().lower()
    assert path.read_text().strip() not in records[0].getMessage()
    assert [p.name for p in path.parent.iterdir()] == ["llmconfig.key"]  # no temp file left behind
    backend.check()


def test_existing_key_file_is_reused_silently(
    settings_factory: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_factory()
    reference = LocalSecretBackend.from_settings(settings).store(owner=OWNER, value=API_KEY)
    caplog.clear()
    caplog.set_level(logging.WARNING, logger="llmconfig.secrets")

    again = LocalSecretBackend.from_settings(settings)

    assert again.load(reference, owner=OWNER) == API_KEY
    assert not [r for r in caplog.records if r.name == "llmconfig.secrets"]


def test_key_file_readable_by_others_is_used_with_a_warning(
    settings_factory: Callable[..., Settings], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = new_key()
    path = tmp_path / "shared.key"
    path.write_text(b64(key) + "\n")
    path.chmod(0o644)
    caplog.set_level(logging.WARNING, logger="llmconfig.secrets")

    backend = LocalSecretBackend.from_settings(settings_factory(master_key_file=path))

    assert LocalSecretBackend(key).load(backend.store(owner=OWNER, value=API_KEY), owner=OWNER) == API_KEY
    messages = [r.getMessage() for r in caplog.records if r.name == "llmconfig.secrets"]
    assert len(messages) == 1
    assert "chmod 600" in messages[0]
    assert str(path) in messages[0]


def test_malformed_key_file_is_a_settings_error_naming_the_file(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    path = tmp_path / "broken.key"
    path.write_text("definitely not a key")
    path.chmod(0o600)
    with pytest.raises(SettingsError, match=str(path)):
        make_secret_backend(settings_factory(master_key_file=path))


def test_master_key_of_wrong_length_is_refused_by_the_constructor() -> None:
    with pytest.raises(SettingsError, match="32 bytes"):
        LocalSecretBackend(b"too short")
