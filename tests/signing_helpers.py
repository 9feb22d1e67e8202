"""Keys, a CA chain and signatures made in the tests with cryptography and model_signing.

Nothing here talks to a network: keyless signing needs Fulcio and Rekor, so the
keyless cases use the real third-party bundles in ../shared/fixtures/sigstore.
"""

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from registry.signing.sign import sign_directory

SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "sigstore"


@dataclass
class KeyPair:
    private_path: Path
    public_pem: str


def make_key(directory: Path, name: str = "signer") -> KeyPair:
    directory.mkdir(parents=True, exist_ok=True)
    private = ec.generate_private_key(ec.SECP256R1())
    path = directory / f"{name}.pem"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyPair(path, public.decode())


def _certificate(subject: str, public_key, issuer_name: str, issuer_key, *, ca: bool, email: str | None = None):
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        if email:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class CertificateChain:
    key: Path  # the leaf's private key
    leaf: Path
    chain: list[Path]  # intermediate then root, as model_signing takes them
    ca_chain_pem: str  # what a namespace policy trusts


def make_ca_chain(
    directory: Path, email: str = "release@acme.example", root_name: str = "Acme Root CA"
) -> CertificateChain:
    directory.mkdir(parents=True, exist_ok=True)
    root_key, inter_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _certificate(root_name, root_key.public_key(), root_name, root_key, ca=True)
    inter = _certificate("Acme Signing CA", inter_key.public_key(), root_name, root_key, ca=True)
    leaf = _certificate("acme release", leaf_key.public_key(), "Acme Signing CA", inter_key, ca=False, email=email)
    paths = {}
    for name, certificate in (("root", root), ("intermediate", inter), ("leaf", leaf)):
        paths[name] = directory / f"{name}.crt"
        paths[name].write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path = directory / "leaf-key.pem"
    key_path.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    ca_pem = paths["intermediate"].read_text() + paths["root"].read_text()
    return CertificateChain(key_path, paths["leaf"], [paths["intermediate"], paths["root"]], ca_pem)


def sign_with_key(directory: Path, key: KeyPair) -> bytes:
    return sign_directory(directory, key=key.private_path).read_bytes()


def sign_with_certificate(directory: Path, chain: CertificateChain) -> bytes:
    return sign_directory(directory, key=chain.key, certificate=chain.leaf, chain=chain.chain).read_bytes()


def resign_statement(bundle: bytes, key: KeyPair, edit) -> bytes:
    """A genuinely signed bundle whose statement `edit` changed first (e.g. a forged subject digest)."""
    from model_signing._signing.sign_sigstore_pb import pae

    document = json.loads(bundle)
    envelope = document["dsseEnvelope"]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    edit(statement)
    payload = json.dumps(statement).encode()
    private = serialization.load_pem_private_key(key.private_path.read_bytes(), password=None)
    signature = private.sign(pae(payload), ec.ECDSA(hashes.SHA256()))
    envelope["payload"] = base64.b64encode(payload).decode()
    envelope["signatures"] = [{"sig": base64.b64encode(signature).decode(), "keyid": ""}]
    return json.dumps(document).encode()


def key_policy(key: KeyPair, *, key_id: str = "ci", revoked_at: str | None = None, require: bool = True) -> dict:
    return {
        "require_signature": require,
        "trusted_keys": [{"id": key_id, "public_key_pem": key.public_pem, "revoked_at": revoked_at}],
    }
