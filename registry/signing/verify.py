"""Offline verification of OpenSSF model-signing v1.0 signatures. No Django here.

A bundle is checked in two independent steps, so the registry can hash stored
blobs itself (at hashlib speed) and a verifier can check a plain directory:

1. `verify_bundle`: the cryptography and the signer. Keyless bundles go through
   sigstore's `Verifier` against a pinned trusted root (Fulcio chain, Rekor
   inclusion proof and SET, DSSE signature); key and certificate bundles through
   model_signing's own verifiers, with the keys and CA chain of the namespace's
   policy. Nothing here opens a socket: the trusted root is a file on disk and is
   never refreshed over TUF.
2. `match_files`: the signed statement against a file set, which must be equal
   exactly. A signer's `ignore_paths` may not drop a stored file, nothing unsigned
   may be added, nothing signed may be missing, and the subject digest must be
   the version's digest (the model-signing manifest root).

Every refusal is a `SignatureRefused` with one of the stable codes in `CODES`.
"""

import base64
import binascii
import functools
import hashlib
import importlib.resources
import json
import os
import stat
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from cryptography import exceptions as crypto_exceptions
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from registry.formats.manifest import manifest_digest
from registry.signing.policy import CLAIM_NAMES, SigningPolicy, TrustedKey

SIGNATURE_FILE = "model.sig"
MAX_BUNDLE_BYTES = 1024 * 1024
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
SIGSTORE_OTHERNAME_OID = "1.3.6.1.4.1.57264.1.7"
FULCIO_ISSUER_V2_OID = "1.3.6.1.4.1.57264.1.8"
FULCIO_ISSUER_V1_OID = "1.3.6.1.4.1.57264.1.1"
FULCIO_OID_PREFIX = "1.3.6.1.4.1.57264.1."
# Extensions 1-6 predate Fulcio's switch to DER-encoded values.
FULCIO_RAW_OIDS = {f"{FULCIO_OID_PREFIX}{n}" for n in range(1, 7)}

CODES = {
    "signature_required": "the namespace's policy requires a signature and none was sent",
    "signature_invalid": "the bundle is malformed or its cryptography does not verify",
    "signature_identity_mismatch": "the signer is not one the namespace's policy trusts",
    "signature_subject_mismatch": "the signed manifest root is not this version's digest",
    "signature_files_mismatch": "the signed file set differs from the version's files",
    "signature_key_revoked": "the signing key is revoked in the namespace's policy",
}
METHOD_KEYLESS, METHOD_KEY, METHOD_CERTIFICATE = "keyless", "key", "certificate"


class SignatureRefused(Exception):
    """A verification that failed: a code from CODES, a message a person can act on.

    `details` carries what was learned before the failure (method, signer), so a
    refused upload still records who tried to sign it.
    """

    def __init__(self, code: str, message: str, details: dict | None = None):
        assert code in CODES, code
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}


@dataclass
class Signer:
    """Who signed, as far as the bundle proves it."""

    identity: str | None = None  # certificate SAN (keyless), subject (certificate), policy key id (key)
    issuer: str | None = None  # OIDC issuer (keyless) or certificate issuer
    claims: dict = field(default_factory=dict)  # Fulcio extension claims by name
    certificate_fingerprint: str | None = None  # SHA-256 of the leaf certificate's DER
    certificate_subject: str | None = None
    certificate_not_before: str | None = None
    certificate_not_after: str | None = None
    rekor_log_id: str | None = None
    rekor_log_index: int | None = None
    rekor_integrated_time: str | None = None
    key_id: str | None = None  # the policy's id for the trusted key
    key_fingerprint: str | None = None  # model-signing key hint (SHA-256 of the PEM public key)


@dataclass
class VerifiedBundle:
    method: str
    signer: Signer
    statement: dict
    subject_name: str
    subject_digest: str
    resources: dict  # file name -> sha256 hex
    ignore_paths: list
    # False only for a keyless signature in a namespace whose policy names no keyless
    # signer: the signature is genuine and logged, but nobody vouched for the identity.
    trusted: bool = True
    matched_rule: str | None = None

    def summary(self) -> dict:
        return {"method": self.method, **asdict(self.signer), "trusted": self.trusted, "rule": self.matched_rule}


# --- Trusted root ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustRoot:
    root: object  # sigstore.models.TrustedRoot
    verifier: object  # a sigstore Verifier over it, built once (it validates the root's keys)
    id: str  # SHA-256 of the trusted_root.json bytes, recorded with every keyless verification
    path: str


class TrustRootInvalid(ValueError):
    """The configured trusted root cannot be used: an operator's problem, not a signer's."""


def packaged_trusted_root_path() -> Path:
    """The Sigstore public-good trusted root embedded in the pinned sigstore package."""
    store = importlib.resources.files("sigstore") / "_store" / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
    return Path(str(store / "trusted_root.json"))


@functools.lru_cache(maxsize=8)
def load_trusted_root(path: str | None = None) -> TrustRoot:
    """A pinned trusted root from a file (never a TUF refresh: verification stays offline)."""
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier

    root_path = Path(path) if path else packaged_trusted_root_path()
    try:
        raw = root_path.read_bytes()
        root = TrustedRoot.from_file(str(root_path))
        verifier = Verifier(trusted_root=root)
    except (OSError, ValueError, SigstoreError) as exc:
        raise TrustRootInvalid(f"the Sigstore trusted root {root_path} cannot be used: {exc}") from None
    return TrustRoot(root=root, verifier=verifier, id=hashlib.sha256(raw).hexdigest(), path=str(root_path))


# --- Reading bundles -------------------------------------------------------------------------


class _InMemoryFile:
    """model_signing's verifiers read keys and bundles from paths; this hands them bytes instead."""

    def __init__(self, data: bytes):
        self.data = data

    def read_bytes(self) -> bytes:
        return self.data

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.data.decode(encoding)


def parse_bundle(raw: bytes) -> dict:
    if len(raw) > MAX_BUNDLE_BYTES:
        raise SignatureRefused("signature_invalid", f"the signature bundle is larger than {MAX_BUNDLE_BYTES} bytes")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SignatureRefused("signature_invalid", f"the signature is not a JSON Sigstore bundle: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("verificationMaterial"), dict):
        raise SignatureRefused("signature_invalid", "the signature is not a Sigstore bundle (no verificationMaterial)")
    return document


def bundle_method(document: dict) -> str:
    """keyless (Fulcio certificate + Rekor entry), key (public key hint) or certificate (a chain, no log)."""
    material = document["verificationMaterial"]
    if "publicKey" in material:
        return METHOD_KEY
    if "certificate" in material:
        return METHOD_KEYLESS
    if "x509CertificateChain" in material:
        return METHOD_KEYLESS if material.get("tlogEntries") else METHOD_CERTIFICATE
    raise SignatureRefused("signature_invalid", "the bundle holds neither a certificate nor a public key hint")


def _rekor_entry(document: dict) -> dict:
    entries = document["verificationMaterial"].get("tlogEntries") or []
    if not entries:
        return {}
    entry = entries[0]
    try:
        log_id = base64.b64decode(entry["logId"]["keyId"]).hex()
        integrated = datetime.fromtimestamp(int(entry["integratedTime"]), UTC).isoformat()
        return {"rekor_log_id": log_id, "rekor_log_index": int(entry["logIndex"]), "rekor_integrated_time": integrated}
    except (KeyError, TypeError, ValueError, binascii.Error):
        return {}


# --- Certificates ----------------------------------------------------------------------------


def _der_utf8(value: bytes) -> str | None:
    """Decode a DER UTF8String (tag 0x0C); None when it is something else."""
    if len(value) < 2 or value[0] != 0x0C:
        return None
    length, offset = value[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, offset = int.from_bytes(value[2 : 2 + count], "big"), 2 + count
    try:
        return value[offset : offset + length].decode()
    except UnicodeDecodeError:
        return None


def _fulcio_claims(certificate: x509.Certificate) -> dict:
    claims = {}
    for extension in certificate.extensions:
        oid = extension.oid.dotted_string
        if not oid.startswith(FULCIO_OID_PREFIX) or not isinstance(extension.value, x509.UnrecognizedExtension):
            continue
        raw = extension.value.value
        text = raw.decode(errors="replace") if oid in FULCIO_RAW_OIDS else _der_utf8(raw)
        if text is not None:
            claims[CLAIM_NAMES.get(oid, oid)] = text
    return claims


def _san_values(certificate: x509.Certificate) -> list[str]:
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    values = list(names.get_values_for_type(x509.RFC822Name))
    values += names.get_values_for_type(x509.UniformResourceIdentifier)
    values += [
        other.value.decode(errors="replace")
        for other in names.get_values_for_type(x509.OtherName)
        if other.type_id.dotted_string == SIGSTORE_OTHERNAME_OID
    ]
    return values


def _certificate_fields(certificate: x509.Certificate) -> dict:
    return {
        "certificate_fingerprint": certificate.fingerprint(hashes.SHA256()).hex(),
        "certificate_subject": certificate.subject.rfc4514_string(),
        "certificate_not_before": certificate.not_valid_before_utc.isoformat(),
        "certificate_not_after": certificate.not_valid_after_utc.isoformat(),
    }


def _keyless_signer(certificate: x509.Certificate, document: dict) -> Signer:
    claims = _fulcio_claims(certificate)
    sans = _san_values(certificate)
    return Signer(
        identity=sans[0] if sans else None,
        issuer=claims.get("issuer") or claims.get("issuer_v1"),
        claims=claims,
        **_certificate_fields(certificate),
        **_rekor_entry(document),
    )


# --- The three methods -----------------------------------------------------------------------


class _CheckedAfterwards:
    """A sigstore policy that accepts any signer: the namespace's rules are applied after the
    cryptography, so a mismatch is reported as such (and names the rule) rather than as invalid."""

    def verify(self, cert) -> None:
        return None


def _method_allowed(method: str, policy: SigningPolicy, details: dict) -> None:
    if method not in policy.methods:
        raise SignatureRefused(
            "signature_identity_mismatch",
            f"the signature uses the {method} method; this namespace's policy allows only {', '.join(policy.methods)}",
            details,
        )


def _verify_keyless(raw: bytes, document: dict, policy: SigningPolicy, root: TrustRoot, artifact: bytes | None):
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import Bundle

    try:
        bundle = Bundle.from_json(raw)
    except (SigstoreError, ValueError) as exc:
        raise SignatureRefused("signature_invalid", f"the Sigstore bundle cannot be read: {exc}") from None
    signer = _keyless_signer(bundle.signing_certificate, document)
    details = {"method": METHOD_KEYLESS, **asdict(signer)}
    _method_allowed(METHOD_KEYLESS, policy, details)
    verifier = root.verifier
    try:
        if artifact is not None:
            verifier.verify_artifact(artifact, bundle, _CheckedAfterwards())
            payload = (None, None)
        else:
            payload = verifier.verify_dsse(bundle, _CheckedAfterwards())
    except (SigstoreError, ValueError) as exc:
        raise SignatureRefused(
            "signature_invalid",
            f"the keyless signature does not verify against trusted root {root.id[:12]}: {exc}",
            details,
        ) from None
    trusted, rule = _keyless_identity(signer, policy, details)
    return signer, payload, trusted, rule


def _keyless_identity(signer: Signer, policy: SigningPolicy, details: dict) -> tuple[bool, str | None]:
    if not policy.keyless:
        if policy.require_signature:
            raise SignatureRefused(
                "signature_identity_mismatch",
                f"signed by {signer.identity} via {signer.issuer}, but this namespace's policy names no keyless "
                "signer it trusts",
                details,
            )
        return False, None
    reasons = []
    for rule in policy.keyless:
        reason = rule.mismatch(signer.identity, signer.issuer, signer.claims)
        if reason is None:
            return True, rule.describe()
        reasons.append(f"{rule.describe()}: {reason}")
    raise SignatureRefused(
        "signature_identity_mismatch",
        f"signed by {signer.identity} via {signer.issuer}, which no keyless rule of this namespace's policy "
        f"accepts ({'; '.join(reasons)})",
        details,
    )


def _protobuf_bundle(raw: bytes):
    from model_signing._signing import sign_sigstore_pb

    try:
        # model_signing's reader also upgrades older key bundles; it reads through a path object.
        return sign_sigstore_pb.Signature.read(_InMemoryFile(raw))
    except (KeyError, TypeError, ValueError) as exc:
        raise SignatureRefused("signature_invalid", f"the bundle cannot be read: {exc}") from None


def _revoked(key: TrustedKey, now: datetime) -> bool:
    return key.revoked_at is not None and key.revoked_at <= now


def _verify_key(raw: bytes, document: dict, policy: SigningPolicy, now: datetime):
    from model_signing._signing import sign_ec_key

    hint = (document["verificationMaterial"].get("publicKey") or {}).get("hint")
    details = {"method": METHOD_KEY, "key_fingerprint": hint}
    _method_allowed(METHOD_KEY, policy, details)
    candidates = [key for key in policy.trusted_keys if not hint or key.fingerprint == hint]
    if not candidates:
        raise SignatureRefused(
            "signature_identity_mismatch",
            f"signed with key {hint or '(no hint)'}, which is not among this namespace's trusted keys",
            details,
        )
    signature = _protobuf_bundle(raw)
    revoked = []
    for key in candidates:
        if _revoked(key, now):
            revoked.append(key)
            continue
        verifier = sign_ec_key.Verifier(_InMemoryFile(key.public_key_pem.encode()))
        try:
            payload = verifier._verify_signed_content(signature)
        except (crypto_exceptions.InvalidSignature, ValueError, IndexError):
            continue
        signer = Signer(identity=key.id, key_id=key.id, key_fingerprint=key.fingerprint)
        return signer, payload, True, f"trusted key {key.id}"
    if revoked:
        key = revoked[0]
        raise SignatureRefused(
            "signature_key_revoked",
            f"signed with key {key.id!r}, revoked in this namespace's policy at {key.revoked_at.isoformat()}",
            {**details, "identity": key.id, "key_id": key.id},
        )
    raise SignatureRefused(
        "signature_invalid",
        "the signature does not verify with the trusted key it names: the bundle was altered",
        details,
    )


def _verify_certificate(raw: bytes, document: dict, policy: SigningPolicy):
    from model_signing._signing import sign_certificate
    from OpenSSL import crypto

    details = {"method": METHOD_CERTIFICATE}
    try:
        chain = document["verificationMaterial"]["x509CertificateChain"]["certificates"]
        leaf = x509.load_der_x509_certificate(base64.b64decode(chain[0]["rawBytes"]))
    except (KeyError, IndexError, TypeError, ValueError, binascii.Error) as exc:
        raise SignatureRefused("signature_invalid", f"the bundle's certificate chain cannot be read: {exc}") from None
    sans = _san_values(leaf)
    signer = Signer(
        identity=sans[0] if sans else leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        **_certificate_fields(leaf),
    )
    details.update(asdict(signer))
    _method_allowed(METHOD_CERTIFICATE, policy, details)
    trust = policy.certificate
    if trust is None:
        raise SignatureRefused(
            "signature_identity_mismatch",
            "signed with a certificate, but this namespace's policy trusts no CA",
            details,
        )
    verifier = sign_certificate.Verifier([_InMemoryFile(trust.ca_chain_pem.encode())])
    try:
        payload = verifier._verify_signed_content(_protobuf_bundle(raw))
    except crypto.X509StoreContextError as exc:
        raise SignatureRefused(
            "signature_identity_mismatch",
            f"the certificate {signer.certificate_subject!r} does not chain to this namespace's CA: {exc}",
            details,
        ) from None
    except (crypto_exceptions.InvalidSignature, ValueError, IndexError) as exc:
        raise SignatureRefused(
            "signature_invalid", f"the certificate signature does not verify: {exc}", details
        ) from None
    if trust.subject and trust.subject not in {signer.certificate_subject, *sans}:
        raise SignatureRefused(
            "signature_identity_mismatch",
            f"the certificate is for {signer.certificate_subject!r} (SANs {sans}), not {trust.subject!r}",
            details,
        )
    return signer, payload, True, f"CA chain{' subject ' + trust.subject if trust.subject else ''}"


# --- The statement ---------------------------------------------------------------------------


def _refuse_invalid(message: str, details: dict):
    raise SignatureRefused("signature_invalid", message, details)


def _valid_name(name) -> bool:
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        return False
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts and "." not in name.split("/")


def _read_statement(payload_type: str, payload: bytes, details: dict) -> tuple[dict, dict, str, str, list]:
    from model_signing._signing.signing import dsse_payload_to_manifest

    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        _refuse_invalid(f"the signed payload is {payload_type!r}, not an in-toto statement", details)
    try:
        statement = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        _refuse_invalid("the signed payload is not JSON", details)
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        _refuse_invalid("the signed payload is not an in-toto v1 statement", details)
    if statement.get("predicateType") != PREDICATE_TYPE:
        _refuse_invalid(
            f"the statement's predicate is {statement.get('predicateType')!r}, not OpenSSF model-signing v1.0", details
        )
    try:
        subject = statement["subject"][0]
        serialization = statement["predicate"]["serialization"]
        listed = statement["predicate"]["resources"]
        subject_digest = subject["digest"]["sha256"]
    except (KeyError, IndexError, TypeError):
        _refuse_invalid("the model-signing statement lacks its subject, serialization or resources", details)
    if serialization.get("method") != "files" or serialization.get("hash_type") != "sha256":
        raise SignatureRefused(
            "signature_files_mismatch",
            f"the model was signed with {serialization.get('method')}/{serialization.get('hash_type')} serialization; "
            "the registry compares whole files by SHA-256 (sign with the default 'files' method)",
            details,
        )
    resources = {}
    for resource in listed:
        name = resource.get("name") if isinstance(resource, dict) else None
        if not _valid_name(name):
            raise SignatureRefused("signature_files_mismatch", f"the signature names the file {name!r}", details)
        if name in resources:
            raise SignatureRefused("signature_files_mismatch", f"the signature lists {name!r} twice", details)
        if resource.get("algorithm") != "sha256":
            raise SignatureRefused("signature_files_mismatch", f"{name!r} is not hashed with sha256", details)
        resources[name] = resource.get("digest")
    try:
        dsse_payload_to_manifest(statement)  # model_signing's own check that the subject covers the resources
    except (ValueError, KeyError, TypeError) as exc:
        raise SignatureRefused(
            "signature_subject_mismatch", f"the signed statement is inconsistent: {exc}", details
        ) from None
    ignore_paths = [str(p) for p in serialization.get("ignore_paths") or []]
    return statement, resources, str(subject.get("name", "")), subject_digest, ignore_paths


# --- Public entry points ---------------------------------------------------------------------


def verify_bundle(
    raw: bytes, policy: SigningPolicy, trusted_root: TrustRoot, *, now: datetime | None = None
) -> VerifiedBundle:
    """Check a model-signing bundle's cryptography and signer against a policy; no files are read."""
    document = parse_bundle(raw)
    method = bundle_method(document)
    if method == METHOD_KEYLESS:
        signer, payload, trusted, rule = _verify_keyless(raw, document, policy, trusted_root, None)
    elif method == METHOD_KEY:
        signer, payload, trusted, rule = _verify_key(raw, document, policy, now or datetime.now(UTC))
    else:
        signer, payload, trusted, rule = _verify_certificate(raw, document, policy)
    details = {"method": method, **asdict(signer)}
    statement, resources, name, digest, ignore_paths = _read_statement(*payload, details)
    return VerifiedBundle(
        method=method,
        signer=signer,
        statement=statement,
        subject_name=name,
        subject_digest=digest,
        resources=resources,
        ignore_paths=ignore_paths,
        trusted=trusted,
        matched_rule=rule,
    )


def match_files(verified: VerifiedBundle, files: dict[str, str], *, expected_digest: str | None = None) -> None:
    """The signed file set must equal `files` (name -> sha256 hex) exactly, and its root `expected_digest`."""
    details = verified.summary()
    for name in sorted(set(files) - set(verified.resources)):
        why = "its ignore_paths leave it out" if _ignored(name, verified.ignore_paths) else "it is not signed"
        raise SignatureRefused(
            "signature_files_mismatch",
            f"{name!r} is part of the model but {why}; the signed file set must equal the model's files",
            details,
        )
    for name in sorted(set(verified.resources) - set(files)):
        raise SignatureRefused("signature_files_mismatch", f"{name!r} is signed but missing from the model", details)
    for name in sorted(files):
        if files[name] != verified.resources[name]:
            raise SignatureRefused(
                "signature_files_mismatch",
                f"{name!r} has sha256 {files[name]}, but the signature says {verified.resources[name]}: "
                "the file was modified after signing",
                details,
            )
    root = manifest_digest(files.items())
    for wanted, what in ((verified.subject_digest, "the signed subject"), (expected_digest, "the version's digest")):
        if wanted is not None and wanted != root:
            raise SignatureRefused(
                "signature_subject_mismatch",
                f"{what} is sha256:{wanted}, but the files' manifest root is sha256:{root}",
                details,
            )


def _ignored(name: str, ignore_paths: list[str]) -> bool:
    parts = PurePosixPath(name).parts
    return any(name == p or parts[: len(PurePosixPath(p).parts)] == PurePosixPath(p).parts for p in ignore_paths)


def hash_files(directory: Path, *, ignore: tuple[str, ...] = (SIGNATURE_FILE,)) -> dict[str, str]:
    """SHA-256 of every regular file under `directory` by relative POSIX path; symlinks are refused."""
    directory = Path(directory)
    files = {}
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        for name in sorted(names) + [d for d in dirs if (Path(root) / d).is_symlink()]:
            path = Path(root) / name
            relative = path.relative_to(directory).as_posix()
            if relative in ignore:
                continue
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise SignatureRefused(
                    "signature_files_mismatch", f"{relative!r} is a symbolic link; only regular files can be verified"
                )
            if not stat.S_ISREG(mode):
                raise SignatureRefused("signature_files_mismatch", f"{relative!r} is not a regular file")
            with path.open("rb") as handle:
                files[relative] = hashlib.file_digest(handle, "sha256").hexdigest()
    return files


def verify_directory(
    directory: Path,
    raw: bytes,
    policy: SigningPolicy,
    trusted_root: TrustRoot,
    *,
    ignore: tuple[str, ...] = (SIGNATURE_FILE,),
    expected_digest: str | None = None,
) -> VerifiedBundle:
    """Verify a signature over a plain directory. `ignore` is the verifier's choice, never the signer's."""
    verified = verify_bundle(raw, policy, trusted_root)
    match_files(verified, hash_files(directory, ignore=ignore), expected_digest=expected_digest)
    return verified


def verify_artifact(path: Path, raw: bytes, policy: SigningPolicy, trusted_root: TrustRoot) -> Signer:
    """Verify a keyless message-signature bundle over one file (e.g. a wheel signed by `sigstore sign`)."""
    document = parse_bundle(raw)
    if bundle_method(document) != METHOD_KEYLESS:
        raise SignatureRefused("signature_invalid", "only keyless bundles sign single artifacts here")
    signer, _payload, _trusted, _rule = _verify_keyless(raw, document, policy, trusted_root, Path(path).read_bytes())
    return signer
