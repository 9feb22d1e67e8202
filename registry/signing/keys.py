"""The registry's own signing key: counter-signatures now, audit checkpoints later.

The private key is a PEM file: REGISTRY_SIGNING_KEY_FILE in production (a mounted
secret), var/signing/registry-key.pem for the embedded default, made on first use
(mode 0600). Its public half is recorded in RegistryKey and never deleted, so a
counter-signature verifies years after the key was rotated: rotation writes a new
file and marks the old public key retired (`manage.py signing_key --rotate`, or
replace the file; the registry notices the new key on its next signature).
"""

import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from registry.models import RegistryKey
from registry.signing.policy import SigningPolicy, TrustedKey, key_fingerprint


@dataclass(frozen=True)
class ActiveKey:
    path: Path
    key_id: str  # model-signing's key hint: SHA-256 of the PEM public key
    public_key_pem: str


_lock = threading.Lock()
_cache: dict = {}


def signing_key_path() -> Path:
    return Path(settings.REGISTRY_SIGNING_KEY_FILE)


def _write_private_key(path: Path) -> None:
    """Create a P-256 key file atomically (0600); if another process got there first, keep theirs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".registry-key.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(temporary)


def _load(path: Path) -> ActiveKey:
    if not path.exists():
        _write_private_key(path)
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)  # a copied or restored var/ may have loosened it
    try:
        private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(private_key, ec.EllipticCurvePrivateKey):
        raise ImproperlyConfigured(f"{path} must hold an ECDSA key (P-256, P-384 or P-521), as model-signing needs")
    public_key = private_key.public_key()
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return ActiveKey(path=path, key_id=key_fingerprint(public_key), public_key_pem=pem.decode())


def _record(key: ActiveKey) -> None:
    """Make `key` the one current RegistryKey; any other current key becomes retired."""
    with transaction.atomic():
        RegistryKey.objects.get_or_create(key_id=key.key_id, defaults={"public_key_pem": key.public_key_pem})
        RegistryKey.objects.filter(key_id=key.key_id).update(retired_at=None)
        RegistryKey.objects.exclude(key_id=key.key_id).filter(retired_at=None).update(retired_at=timezone.now())


def active_key() -> ActiveKey:
    """The key the registry signs with now, made on first use and recorded in RegistryKey."""
    path = signing_key_path()
    stamp = (str(path), path.stat().st_mtime_ns if path.exists() else None)
    with _lock:
        if _cache.get("stamp") != stamp or _cache.get("key") is None:
            _cache.update(key=_load(path), stamp=(str(path), path.stat().st_mtime_ns))
        key = _cache["key"]
    # One query: the row may be missing (a restored database, a test's rolled-back transaction).
    if not RegistryKey.objects.filter(key_id=key.key_id, retired_at=None).exists():
        _record(key)
    return key


def rotate_signing_key() -> ActiveKey:
    """Replace the key file with a new key; the old public key stays listed, retired."""
    path = signing_key_path()
    old = _load(path) if path.exists() else None
    replacement = path.with_name(path.name + ".new")
    replacement.unlink(missing_ok=True)
    _write_private_key(replacement)
    os.replace(replacement, path)
    with _lock:
        _cache.clear()
    key = active_key()
    assert old is None or old.key_id != key.key_id
    return key


def registry_keys_policy() -> SigningPolicy:
    """A policy trusting every key the registry ever signed with (retired is not revoked)."""
    keys = tuple(
        TrustedKey(
            id=f"registry:{row.key_id[:16]}", public_key_pem=row.public_key_pem, revoked_at=None, fingerprint=row.key_id
        )
        for row in RegistryKey.objects.all()
    )
    return SigningPolicy(methods=("key",), trusted_keys=keys)
