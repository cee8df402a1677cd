"""The local secret backend: AES-256-GCM with a master key held by the operator.

The reference *is* the ciphertext — ``"local:v1:" + urlsafe-base64(nonce + ciphertext)`` — so the
database row carries everything needed to decrypt except the master key, and deleting a secret is a
no-op. The owner id is authenticated as associated data: a reference copied onto another provider fails
to decrypt instead of silently lending its key.

Decryption tries a small key ring, newest first: the current master key, then
``LLMCONFIG_MASTER_KEY_PREVIOUS``, then — in key file mode — the files a rotation leaves next to the key
file (``<file>.new`` while a rotation is being installed, ``<file>.previous`` after it). Encryption always
uses the current key. In key file mode the files are watched (one ``stat`` per store or failed decryption),
so a running process picks up a rotated key file without a restart.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import stat
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from llmconfig.errors import SecretBackendError, SecretDecryptionError, SettingsError
from llmconfig.settings import Settings

if TYPE_CHECKING:
    from llmconfig.secrets.base import SecretBackend

__all__ = [
    "LocalSecretBackend",
    "encode_master_key",
    "fsync_directory",
    "generate_master_key",
    "load_master_key",
    "pending_key_file",
    "previous_key_file",
    "read_key_file",
    "write_key_file",
]

logger = logging.getLogger("llmconfig.secrets")

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
REFERENCE_PREFIX: Final = "local:v1:"
GENERATE_KEY_COMMAND: Final = 'python -c "import base64,os;print(base64.b64encode(os.urandom(32)).decode())"'

# Resolves a reference written by another backend to the backend that reads it (see make_secret_backend).
ForeignReader = Callable[[str], "SecretBackend"]


def pending_key_file(key_file: Path) -> Path:
    """Where a rotation puts the new key before committing (``<file>.new``)."""
    return key_file.with_name(key_file.name + ".new")


def previous_key_file(key_file: Path) -> Path:
    """Where a rotation keeps the replaced key (``<file>.previous``), for restoring older database backups."""
    return key_file.with_name(key_file.name + ".previous")


class LocalSecretBackend:
    """Encrypts secrets with AES-256-GCM; see the module docstring for the reference format and key ring."""

    name = "local"

    def __init__(self, master_key: bytes, *, previous_keys: Sequence[bytes] = (), key_file: Path | None = None) -> None:
        for key in (master_key, *previous_keys):
            _check_length(key)
        self._current = master_key
        self._previous = tuple(previous_keys)
        self._key_file = key_file
        self._file_keys: tuple[bytes, ...] = ()
        self._file_state: tuple[tuple[int, int, int] | None, ...] | None = None
        self._lock = threading.Lock()
        self._ring: tuple[AESGCM, ...] = ()
        self._foreign: ForeignReader | None = None
        if key_file is not None:
            self._file_state = self._watched_state()
            self._file_keys = self._read_side_files()
        self._rebuild()

    @classmethod
    def from_settings(cls, settings: Settings, *, create: bool = True) -> LocalSecretBackend:
        """Build the backend from ``LLMCONFIG_MASTER_KEY``, else from (or into) the master key file.

        ``LLMCONFIG_MASTER_KEY_PREVIOUS`` joins the key ring. ``create=False`` never creates a key file:
        it raises :class:`SettingsError` when there is no key to read with.
        """
        previous: list[bytes] = []
        if settings.master_key_previous is not None:
            previous.append(
                _decode_master_key(
                    settings.master_key_previous.get_secret_value(), source="LLMCONFIG_MASTER_KEY_PREVIOUS"
                )
            )
        if settings.master_key is not None:
            return cls(load_master_key(settings), previous_keys=previous)
        if not create and not settings.master_key_file.exists():
            raise SettingsError(
                f"No master key: LLMCONFIG_MASTER_KEY is unset and the key file {settings.master_key_file} does "
                "not exist. Set LLMCONFIG_MASTER_KEY or LLMCONFIG_MASTER_KEY_FILE to the key the local secrets "
                "were encrypted with."
            )
        return cls(load_master_key(settings), previous_keys=previous, key_file=settings.master_key_file)

    def read_foreign_with(self, reader: ForeignReader | None) -> None:
        """Load (and delete) references of other backends through ``reader`` instead of refusing them."""
        self._foreign = reader

    def store(self, *, owner: str, value: str, slot: str | None = None) -> str:
        """Encrypt ``value`` bound to ``owner``; every call uses a fresh nonce, so references differ.

        ``slot`` changes nothing here: each reference holds its own ciphertext.
        """
        self._refresh()
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = self._ring[0].encrypt(nonce, value.encode("utf-8"), owner.encode("utf-8"))
        return REFERENCE_PREFIX + base64.urlsafe_b64encode(nonce + ciphertext).decode("ascii")

    def load(self, reference: str, *, owner: str) -> str:
        """Decrypt ``reference``; raises :class:`SecretDecryptionError` rather than return garbage."""
        if not reference.startswith("local:") and self._foreign is not None and ":" in reference:
            return self._foreign(reference).load(reference, owner=owner)
        if not reference.startswith("local:"):
            backend = reference.split(":", 1)[0] if ":" in reference else "unknown"
            raise SecretBackendError(
                f"The API key of provider {owner} is stored in the {backend!r} secret backend, but "
                f"LLMCONFIG_SECRET_BACKEND is 'local'. Set LLMCONFIG_SECRET_BACKEND={backend} "
                "(with its settings), or enter the API key again."
            )
        if not reference.startswith(REFERENCE_PREFIX):
            version = reference.split(":", 2)[1] if reference.count(":") >= 2 else "?"
            raise SecretBackendError(
                f"The API key of provider {owner} uses local secret format {version!r}, which this "
                "version of llmconfig cannot read. Upgrade llmconfig, or enter the API key again."
            )
        try:
            blob = base64.urlsafe_b64decode(reference[len(REFERENCE_PREFIX) :].encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            blob = b""
        if len(blob) < NONCE_BYTES + TAG_BYTES:
            raise SecretDecryptionError(
                f"The stored API key of provider {owner} is damaged (not a valid local secret reference). "
                "Enter the API key again."
            )
        nonce, ciphertext = blob[:NONCE_BYTES], blob[NONCE_BYTES:]
        plaintext = self._decrypt(self._ring, nonce, ciphertext, owner)
        if plaintext is None and self._refresh():
            plaintext = self._decrypt(self._ring, nonce, ciphertext, owner)
        if plaintext is None:
            raise SecretDecryptionError(
                "it cannot be decrypted: the master key differs from the one it was encrypted with "
                "(or the stored value was altered or belongs to another provider). Set LLMCONFIG_MASTER_KEY "
                "or LLMCONFIG_MASTER_KEY_FILE to the original master key (during a key rotation, the old one "
                "in LLMCONFIG_MASTER_KEY_PREVIOUS), or enter the API key again."
            ) from None
        return plaintext

    def decrypts_with_current_key(self, reference: str, *, owner: str) -> bool:
        """Whether the current master key alone decrypts ``reference`` (``False`` for any failure)."""
        if not reference.startswith(REFERENCE_PREFIX):
            return False
        self._refresh()
        try:
            blob = base64.urlsafe_b64decode(reference[len(REFERENCE_PREFIX) :].encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            return False
        return self._decrypt(self._ring[:1], blob[:NONCE_BYTES], blob[NONCE_BYTES:], owner) is not None

    def delete(self, reference: str) -> None:
        """Nothing to do: the reference is the ciphertext, so dropping it from the database forgets it.

        A reference of another backend is deleted there when a foreign reader is set.
        """
        if not reference.startswith("local:") and self._foreign is not None and ":" in reference:
            self._foreign(reference).delete(reference)

    @staticmethod
    def _decrypt(ring: Sequence[AESGCM], nonce: bytes, ciphertext: bytes, owner: str) -> str | None:
        for aead in ring:
            try:
                return aead.decrypt(nonce, ciphertext, owner.encode("utf-8")).decode("utf-8")
            except (InvalidTag, UnicodeDecodeError):
                continue
        return None

    def _rebuild(self) -> None:
        keys: list[bytes] = []
        for key in (self._current, *self._previous, *self._file_keys):
            if key not in keys:
                keys.append(key)
        self._ring = tuple(AESGCM(key) for key in keys)

    def _watched_state(self) -> tuple[tuple[int, int, int] | None, ...]:
        assert self._key_file is not None
        state: list[tuple[int, int, int] | None] = []
        for path in (self._key_file, pending_key_file(self._key_file), previous_key_file(self._key_file)):
            try:
                info = path.stat()
            except OSError:
                state.append(None)
            else:
                state.append((info.st_ino, info.st_mtime_ns, info.st_size))
        return tuple(state)

    def _read_side_files(self) -> tuple[bytes, ...]:
        """The keys of ``<file>.new`` and ``<file>.previous`` when present (unreadable ones are skipped)."""
        assert self._key_file is not None
        keys: list[bytes] = []
        for path in (pending_key_file(self._key_file), previous_key_file(self._key_file)):
            if path.exists():
                try:
                    keys.append(_read_key_file(path))
                except SettingsError as exc:
                    logger.warning("Ignoring %s: %s", path, exc)
        return tuple(keys)

    def _refresh(self) -> bool:
        """Re-read the key files when they changed on disk (a rotation); ``True`` when the ring changed."""
        if self._key_file is None:
            return False
        state = self._watched_state()
        if state == self._file_state:
            return False
        with self._lock:
            if state == self._file_state:
                return False
            current = self._current
            if self._key_file.exists():
                try:
                    current = _read_key_file(self._key_file)
                except SettingsError as exc:
                    logger.warning("Keeping the master key in use: %s", exc)
            side = self._read_side_files()
            changed = current != self._current or side != self._file_keys
            self._current, self._file_keys, self._file_state = current, side, state
            if changed:
                self._rebuild()
            return changed

    def check(self) -> None:
        """Encrypt and decrypt a probe, proving the key and the crypto library work."""
        probe = "llmconfig-health-probe"
        try:
            ok = self.load(self.store(owner="health", value=probe), owner="health") == probe
        except SecretBackendError as exc:
            raise SecretBackendError(f"The local secret backend failed its self-test: {exc}") from None
        if not ok:
            raise SecretBackendError("The local secret backend failed its self-test (round trip mismatch).")


def load_master_key(settings: Settings) -> bytes:
    """Return the 32-byte master key from the settings, reading or creating the key file as needed.

    ``LLMCONFIG_MASTER_KEY`` wins. Otherwise ``LLMCONFIG_MASTER_KEY_FILE`` is read if it exists (with a
    warning when other users may read it) or created with mode 0600, logging one warning that asks the
    operator to back it up.
    """
    if settings.master_key is not None:
        return _decode_master_key(settings.master_key.get_secret_value(), source="LLMCONFIG_MASTER_KEY")
    path = settings.master_key_file
    if path.exists():
        return _read_key_file(path)
    return _create_key_file(path)


def _check_length(key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise SettingsError(
            f"The local secret backend needs a master key of exactly {KEY_BYTES} bytes, "
            f"got {len(key)}. Generate one with: {GENERATE_KEY_COMMAND}"
        )


def generate_master_key() -> bytes:
    """32 fresh random bytes."""
    return os.urandom(KEY_BYTES)


def encode_master_key(key: bytes) -> bytes:
    """The key file content for ``key``: base64 and a newline."""
    return base64.b64encode(key) + b"\n"


def read_key_file(path: Path) -> bytes:
    """The key in ``path`` (base64 of 32 bytes); :class:`SettingsError` naming the file otherwise."""
    return _read_key_file(path)


def write_key_file(path: Path, key: bytes) -> bool:
    """Write ``key`` to a new file ``path`` with mode 0600, fsynced, in a directory made (mode 0700) if there is
    none; ``False`` if ``path`` already exists. OSError when it cannot be written."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    created = _write_new_file(path, encode_master_key(key))
    fsync_directory(path.parent)
    return created


def fsync_directory(directory: Path) -> None:
    """Make renames and new names in ``directory`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _decode_master_key(text: str, *, source: str) -> bytes:
    cleaned = text.strip()
    problem: str | None = None
    key = b""
    if not cleaned:
        problem = "it is empty"
    else:
        try:
            # Accept the URL-safe alphabet too: both are common ways to print 32 random bytes.
            key = base64.b64decode(cleaned.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            problem = "it is not valid base64"
        else:
            if len(key) != KEY_BYTES:
                problem = f"it decodes to {len(key)} bytes instead of {KEY_BYTES}"
    if problem is not None:
        raise SettingsError(
            f"The master key in {source} cannot be used: {problem}. It must be the base64 encoding of "
            f"exactly {KEY_BYTES} random bytes; generate one with: {GENERATE_KEY_COMMAND}"
        )
    return key


def _read_key_file(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(
            f"Cannot read the master key file {path} ({exc.__class__.__name__}). Check its permissions, "
            "or set LLMCONFIG_MASTER_KEY / LLMCONFIG_MASTER_KEY_FILE."
        ) from None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning(
            "The master key file %s can be accessed by other users (mode %s); restrict it with: chmod 600 %s",
            path,
            oct(stat.S_IMODE(mode)),
            path,
        )
    return _decode_master_key(text, source=f"the file {path}")


def _create_key_file(path: Path) -> bytes:
    key = generate_master_key()
    try:
        created = write_key_file(path, key)
    except OSError as exc:
        raise SettingsError(
            f"Cannot create the master key file {path} ({exc.strerror or exc.__class__.__name__}). "
            "Make its directory writable, or set LLMCONFIG_MASTER_KEY_FILE to a writable path, or set "
            f"LLMCONFIG_MASTER_KEY (generate one with: {GENERATE_KEY_COMMAND})."
        ) from None
    if not created:
        # Another process (a second replica starting at the same moment) won the race: use its key.
        return _read_key_file(path)
    logger.warning(
        "Created a new master key file %s (mode 0600). Back it up: every stored API key is encrypted "
        "with it, and losing it makes them all unreadable.",
        path,
    )
    return key


def _write_new_file(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` only if it does not exist; ``False`` when someone else created it first.

    The key is written to a private temporary file and then hard-linked into place, so no reader ever sees
    a half-written key file. Filesystems without hard links fall back to an exclusive create.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    _write_exclusive(tmp, data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError:
        try:
            _write_exclusive(path, data)
        except FileExistsError:
            return False
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return True


def _write_exclusive(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
