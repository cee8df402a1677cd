"""Maintenance of stored secrets: rotate the local master key, check every secret, move between backends.

All three work on every provider key (``provider_keys.secret_ref``: a provider may hold several) and never
write a plaintext key anywhere: values are decrypted into memory, re-stored and forgotten.

**Rotation** (:func:`rotate_master_key`) re-encrypts every ``local:`` reference under a new key in one
database transaction. The new key is on disk (fsynced, mode 0600) *before* that transaction commits, so
there is no moment when the database holds ciphertexts whose key exists nowhere:

* key file in use (``LLMCONFIG_MASTER_KEY`` unset): the new key goes to ``<file>.new``; the transaction
  commits; then the old key is copied to ``<file>.previous`` and ``<file>.new`` is renamed over the key
  file (atomic). Readers of the key file also try ``<file>.new`` and ``<file>.previous``, so every
  process decrypts in every window, and running processes notice the new file without a restart. A crash
  after the commit but before the rename leaves ``<file>.new``; the next rotation finds it, sees that the
  database is encrypted with it and installs it first (before the commit it is simply discarded).
  ``<file>.previous`` stays for database backups taken before the rotation.
* key from ``LLMCONFIG_MASTER_KEY``: the new key is written to a file the operator names (or read from
  it when it already exists, so it can be distributed beforehand); the operator then rolls it out as
  ``LLMCONFIG_MASTER_KEY`` with the old key in ``LLMCONFIG_MASTER_KEY_PREVIOUS`` (see ``next_steps``).

**Migration** (:func:`migrate_secrets`) moves each provider key to another backend in its own
transaction (row locked, version and config revision bumped, audited) and deletes the source copy only
after that commit. Every process reads both kinds of reference (see :mod:`llmconfig.secrets`), so every
provider stays readable at every step, and a second run finds nothing to move.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import Select, select
from sqlalchemy.orm import Session, sessionmaker

from llmconfig.db.changes import Change, record_change
from llmconfig.db.engine import transaction
from llmconfig.db.models import Provider, ProviderKey, utcnow
from llmconfig.errors import ConflictError, SecretBackendError, SecretDecryptionError, SettingsError
from llmconfig.secrets.base import SecretBackend
from llmconfig.secrets.local import (
    LocalSecretBackend,
    fsync_directory,
    generate_master_key,
    load_master_key,
    pending_key_file,
    previous_key_file,
    read_key_file,
    write_key_file,
)
from llmconfig.settings import Settings

__all__ = [
    "KeyRotationResult",
    "SecretCheck",
    "SecretCheckReport",
    "SecretMigrationResult",
    "check_secrets",
    "forget_uncommitted",
    "migrate_secrets",
    "reencrypt_local_secrets",
    "restore_in",
    "rotate_master_key",
    "stored_in",
]

LOCAL_PREFIX = "local:"


# -- check -----------------------------------------------------------------------------------------------


class SecretCheck(BaseModel):
    """The outcome for one stored provider key."""

    provider_id: str
    provider_name: str
    key_id: str
    key_hint: str | None
    backend: str
    ok: bool
    # ok: decrypts with the current key; old_key: only with a previous key (re-run the rotation);
    # undecryptable: no key decrypts it; unavailable: the backend failed or has no such secret.
    status: Literal["ok", "old_key", "undecryptable", "unavailable"]
    detail: str


class SecretCheckReport(BaseModel):
    ok: bool
    checked: int
    failed: int
    results: list[SecretCheck]


def check_secrets(sessions: sessionmaker[Session], reader: SecretBackend) -> SecretCheckReport:
    """Try to load every stored key with ``reader``; report each key's outcome (never a value)."""
    with transaction(sessions) as session:
        rows = session.execute(_every_key()).all()
    results: list[SecretCheck] = []
    for provider_id, name, key_id, hint, reference in rows:
        backend = reference.split(":", 1)[0] if ":" in reference else "unknown"
        who = _who(provider_id, name, key_id, hint, backend)
        try:
            reader.load(reference, owner=provider_id)
        except SecretDecryptionError as exc:
            results.append(SecretCheck(**who, ok=False, status="undecryptable", detail=str(exc)))
            continue
        except SecretBackendError as exc:
            results.append(SecretCheck(**who, ok=False, status="unavailable", detail=str(exc)))
            continue
        if isinstance(reader, LocalSecretBackend) and not reader.decrypts_with_current_key(
            reference, owner=provider_id
        ):
            results.append(
                SecretCheck(
                    **who,
                    ok=True,
                    status="old_key",
                    detail="decrypts only with a previous master key; run `llmconfig keys rotate` to re-encrypt it",
                )
            )
            continue
        results.append(SecretCheck(**who, ok=True, status="ok", detail="decrypts"))
    failed = sum(1 for result in results if not result.ok)
    return SecretCheckReport(ok=failed == 0, checked=len(results), failed=failed, results=results)


def _every_key() -> Select[str, str, str, str | None, str]:
    """(provider id, provider name, key id, hint, reference) of every key, by provider name, first key first."""
    return (
        select(Provider.id, Provider.name, ProviderKey.id, ProviderKey.hint, ProviderKey.secret_ref)
        .join(ProviderKey, ProviderKey.provider_id == Provider.id)
        .order_by(Provider.name, ProviderKey.created_at, ProviderKey.id)
    )


def _who(provider_id: str, name: str, key_id: str, hint: str | None, backend: str) -> dict[str, str | None]:
    return {"provider_id": provider_id, "provider_name": name, "key_id": key_id, "key_hint": hint, "backend": backend}


# -- rotation --------------------------------------------------------------------------------------------


class KeyRotationResult(BaseModel):
    mode: Literal["key_file", "environment"]
    reencrypted: int
    providers: list[str]
    new_key_file: str
    previous_key_file: str | None
    completed_interrupted_rotation: bool
    next_steps: list[str]


class _RotationAudit(BaseModel):
    """What the audit trail keeps of a rotation: names and places, never key material."""

    mode: str
    reencrypted: int
    providers: list[str]
    new_key_file: str


def reencrypt_local_secrets(
    sessions: sessionmaker[Session],
    *,
    reader: SecretBackend,
    writer: LocalSecretBackend,
    actor: str,
    mode: str,
    new_key_file: str,
) -> list[str]:
    """Re-encrypt every ``local:`` key reference with ``writer`` in one transaction; returns provider names.

    Every key of every provider is covered; the names come once per key re-encrypted. Any key that ``reader``
    cannot decrypt aborts the whole transaction (nothing changes) with an error naming the provider and key.
    """
    with transaction(sessions, write=True) as session:
        query = (
            select(ProviderKey, Provider.name)
            .join(Provider, Provider.id == ProviderKey.provider_id)
            .where(ProviderKey.secret_ref.like(LOCAL_PREFIX + "%"))
            .order_by(Provider.name, ProviderKey.created_at, ProviderKey.id)
        )
        keys = [(key, name) for key, name in session.execute(query.with_for_update(of=ProviderKey))]
        for key, name in keys:
            try:
                value = reader.load(key.secret_ref, owner=key.provider_id)
            except SecretBackendError as exc:
                raise type(exc)(
                    f"Cannot rotate the master key, nothing was changed: the API key {_key_label(key)} of provider "
                    f"{name!r} (id {key.provider_id}) cannot be read: {exc} "
                    "(`llmconfig keys check` lists every such key)"
                ) from None
            key.secret_ref = writer.store(owner=key.provider_id, value=value, slot=key.id)
            del value
        names = [name for _, name in keys]  # one per key
        session.flush()
        record_change(
            session,
            Change.secrets("local-master-key"),
            actor=actor,
            action="secrets.rotate_master_key",
            after=_RotationAudit(
                mode=mode, reencrypted=len(names), providers=sorted(set(names)), new_key_file=new_key_file
            ),
        )
    return names


def rotate_master_key(
    sessions: sessionmaker[Session], settings: Settings, *, new_key_file: Path | None = None, actor: str = "system"
) -> KeyRotationResult:
    """Re-encrypt every local secret under a new master key; see the module docstring for the steps."""
    if settings.master_key is not None:
        return _rotate_environment_key(sessions, settings, new_key_file=new_key_file, actor=actor)
    if new_key_file is not None:
        raise SettingsError(
            f"LLMCONFIG_MASTER_KEY is unset, so the key file {settings.master_key_file} is rotated in place; "
            "--new-key-file is only for a master key held in LLMCONFIG_MASTER_KEY"
        )
    return _rotate_key_file(sessions, settings, actor=actor)


def _rotate_environment_key(
    sessions: sessionmaker[Session], settings: Settings, *, new_key_file: Path | None, actor: str
) -> KeyRotationResult:
    if new_key_file is None:
        raise SettingsError(
            "The master key comes from LLMCONFIG_MASTER_KEY, so the new key needs a place to go: pass "
            "--new-key-file PATH (written with mode 0600; never printed)"
        )
    current = load_master_key(settings)
    reader = LocalSecretBackend.from_settings(settings, create=False)
    created = False
    if new_key_file.exists():
        new_key = read_key_file(new_key_file)  # prepared (and perhaps distributed) beforehand
    else:
        new_key = generate_master_key()
        try:
            created = write_key_file(new_key_file, new_key)
        except OSError as exc:
            raise SettingsError(
                f"Cannot write the new master key to {new_key_file} ({exc.strerror or exc.__class__.__name__}); "
                "choose a writable path"
            ) from None
        if not created:
            new_key = read_key_file(new_key_file)
    if new_key == current:
        raise SettingsError(f"The key in {new_key_file} is the current master key; a rotation needs a different one")
    try:
        names = reencrypt_local_secrets(
            sessions,
            reader=reader,
            writer=LocalSecretBackend(new_key),
            actor=actor,
            mode="environment",
            new_key_file=str(new_key_file),
        )
    except BaseException:
        if created:  # nothing was encrypted with it
            with contextlib.suppress(OSError):
                new_key_file.unlink()
        raise
    steps = [
        f"Set LLMCONFIG_MASTER_KEY to the content of {new_key_file} on every process, and the old key in "
        "LLMCONFIG_MASTER_KEY_PREVIOUS while they restart (a process still on the old key may write with it).",
        "When every process runs with the new key, run `llmconfig keys check`; if it reports keys that decrypt "
        "only with the previous key, rotate again.",
        "Then remove LLMCONFIG_MASTER_KEY_PREVIOUS everywhere, and keep or delete the file as your secret "
        "store requires.",
    ]
    return KeyRotationResult(
        mode="environment",
        reencrypted=len(names),
        providers=sorted(set(names)),
        new_key_file=str(new_key_file),
        previous_key_file=None,
        completed_interrupted_rotation=False,
        next_steps=steps,
    )


def _rotate_key_file(sessions: sessionmaker[Session], settings: Settings, *, actor: str) -> KeyRotationResult:
    path = settings.master_key_file
    if not path.exists():
        raise SettingsError(
            f"There is no master key to rotate: LLMCONFIG_MASTER_KEY is unset and the key file {path} does not exist"
        )
    pending = pending_key_file(path)
    with _exclusive(path):
        completed = _recover_interrupted(sessions, path, pending) if pending.exists() else False
        reader = LocalSecretBackend.from_settings(settings, create=False)
        if not write_key_file(pending, generate_master_key()):
            raise ConflictError(f"{pending} appeared meanwhile: another rotation is running; try again later")
        writer = LocalSecretBackend(read_key_file(pending))
        try:
            names = reencrypt_local_secrets(
                sessions, reader=reader, writer=writer, actor=actor, mode="key_file", new_key_file=str(path)
            )
        except BaseException:
            with contextlib.suppress(OSError):
                pending.unlink()  # not committed: nothing is encrypted with it
            raise
        _install(path, pending)
    return KeyRotationResult(
        mode="key_file",
        reencrypted=len(names),
        providers=sorted(set(names)),
        new_key_file=str(path),
        previous_key_file=str(previous_key_file(path)),
        completed_interrupted_rotation=completed,
        next_steps=[
            f"Back up {path} now: it holds the new key (running processes pick it up by themselves).",
            f"{previous_key_file(path)} holds the old key, needed only to read database backups taken before "
            "this rotation; delete it when those backups expire.",
        ],
    )


def _recover_interrupted(sessions: sessionmaker[Session], path: Path, pending: Path) -> bool:
    """Finish (``True``) or discard (``False``) a rotation that stopped after writing ``pending``."""
    probe = LocalSecretBackend(read_key_file(pending))
    with transaction(sessions) as session:
        rows = session.execute(
            select(ProviderKey.provider_id, ProviderKey.secret_ref).where(
                ProviderKey.secret_ref.like(LOCAL_PREFIX + "%")
            )
        ).all()
    if any(ref is not None and probe.decrypts_with_current_key(ref, owner=pid) for pid, ref in rows):
        _install(path, pending)  # it committed: the database is encrypted with the pending key
        return True
    pending.unlink()  # it never committed: nothing is encrypted with it
    fsync_directory(path.parent)
    return False


def _install(path: Path, pending: Path) -> None:
    """Keep the current key as ``<file>.previous``, then atomically rename ``pending`` over ``path``."""
    previous = previous_key_file(path)
    tmp = previous.with_name(f".{previous.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, path.read_bytes())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, previous)
    os.replace(pending, path)
    fsync_directory(path.parent)


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """One rotation of a key file at a time on this host (the key file is local to it)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: rely on the <file>.new exclusive create
        yield
        return
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConflictError(f"Another rotation of {path} is running; try again when it has finished") from None
        yield
    finally:
        os.close(fd)


# -- migration between backends -------------------------------------------------------------------------


class SecretMigrationResult(BaseModel):
    target: str
    migrated: list[str]
    unchanged: int
    deleted_from_source: int
    cleanup_failures: list[str]


class _SecretLocation(BaseModel):
    backend: str


def migrate_secrets(
    sessions: sessionmaker[Session], target: SecretBackend, *, actor: str = "system"
) -> SecretMigrationResult:
    """Move every provider key into ``target``, one key per transaction (every key of every provider).

    ``target`` must read references of the other backend too (as :func:`llmconfig.secrets.build_backend`
    builds it); its ``delete`` then removes the source copy, after the commit. A failure stops the run
    with an error naming the provider; keys already moved stay moved, the rest stay where they were,
    and running the command again continues. ``migrated`` names a provider once per key moved.
    """
    with transaction(sessions) as session:
        ids = [(provider_id, key_id) for provider_id, _, key_id, _, _ in session.execute(_every_key())]
    migrated: list[str] = []
    unchanged = 0
    deleted = 0
    failures: list[str] = []
    for provider_id, key_id in ids:
        new_ref: str | None = None
        old_ref: str | None = None
        committed = False
        name = provider_id
        try:
            with transaction(sessions, write=True) as session:
                provider = session.scalars(select(Provider).where(Provider.id == provider_id).with_for_update()).first()
                key = next((k for k in provider.keys if k.id == key_id), None) if provider is not None else None
                if provider is None or key is None or stored_in(target, key.secret_ref):
                    unchanged += 1
                    continue
                name, old_ref = provider.name, key.secret_ref
                new_ref = restore_in(target, old_ref, owner=provider.id, slot=key.id)
                key.secret_ref = new_ref
                provider.updated_at = utcnow()  # the provider's version moves with its keys
                session.flush()
                record_change(
                    session,
                    Change.provider(provider.id),
                    actor=actor,
                    action="provider.secret_migrate",
                    before=_SecretLocation(backend=old_ref.split(":", 1)[0]),
                    after=_SecretLocation(backend=target.name),
                )
            committed = True
        except SecretBackendError as exc:
            forget_uncommitted(target, new_ref, committed=committed, old_ref=old_ref)
            raise type(exc)(
                f"Moved {len(migrated)} key(s) to the {target.name!r} backend, then stopped at provider {name!r} "
                f"(id {provider_id}): {exc} Every provider is still readable; fix this and run the command again."
            ) from None
        except BaseException:
            forget_uncommitted(target, new_ref, committed=committed, old_ref=old_ref)
            raise
        migrated.append(name)
        assert old_ref is not None
        try:
            target.delete(old_ref)  # routed to the source backend by the reference's prefix
            deleted += 1
        except SecretBackendError as exc:
            failures.append(f"{name}: the old copy could not be deleted: {exc}")
    return SecretMigrationResult(
        target=target.name,
        migrated=migrated,
        unchanged=unchanged,
        deleted_from_source=deleted,
        cleanup_failures=failures,
    )


def _key_label(key: ProviderKey) -> str:
    return f"…{key.hint}" if key.hint else f"{key.id}"


def stored_in(target: SecretBackend, reference: str) -> bool:
    """Whether ``reference`` already points into ``target`` (so moving it there changes nothing)."""
    return reference.startswith(target.name + ":")


def restore_in(target: SecretBackend, reference: str, *, owner: str, slot: str | None = None) -> str:
    """Store ``owner``'s key behind ``reference`` again in ``target``; returns the new reference.

    ``reference`` may belong to any backend ``target`` reads (see :func:`llmconfig.secrets.build_backend`).
    The value passes through memory only. The old copy is left where it is: delete it once the new
    reference is committed, or delete the new one with :func:`forget_uncommitted` when it is not.
    """
    value = target.load(reference, owner=owner)
    try:
        return target.store(owner=owner, value=value, slot=slot)
    finally:
        del value


def forget_uncommitted(target: SecretBackend, new_ref: str | None, *, committed: bool, old_ref: str | None) -> None:
    """Remove a copy stored in ``target`` whose row update did not commit."""
    if new_ref is None or committed or new_ref == old_ref:
        return
    with contextlib.suppress(SecretBackendError):
        target.delete(new_ref)
