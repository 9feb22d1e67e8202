"""A namespace's signing policy: which signers the registry trusts. No Django here.

The policy is a JSON document an admin PUTs (see README, "Signatures"):

    {"require_signature": bool,
     "methods": ["keyless", "key", "certificate"],
     "keyless": [{"issuer": str, "identity": str}
                 | {"issuer": str, "identity_regex": str, "claims": {"<OID or name>": "<exact or ^regex$>"}}],
     "trusted_keys": [{"id": str, "public_key_pem": str, "revoked_at": RFC 3339 time | null}],
     "certificate": {"ca_chain_pem": str, "subject": str | null} | null}

`parse_policy` refuses anything else with a message naming the field, so a
policy that is stored is one the verifier can apply. Regexes are RE2 (linear
time, as everywhere user patterns are matched) and always match the whole value.
"""

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

import re2
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

METHODS = ("keyless", "key", "certificate")
MAX_PEM_CHARS = 64 * 1024
MAX_PATTERN_CHARS = 1024

# Fulcio's certificate extensions (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md),
# by the names a policy may use instead of the OID. 1-6 hold raw UTF-8; 8 and later DER UTF8String.
FULCIO_CLAIMS = {
    "issuer_v1": "1.3.6.1.4.1.57264.1.1",
    "github_workflow_trigger": "1.3.6.1.4.1.57264.1.2",
    "github_workflow_sha": "1.3.6.1.4.1.57264.1.3",
    "github_workflow_name": "1.3.6.1.4.1.57264.1.4",
    "github_workflow_repository": "1.3.6.1.4.1.57264.1.5",
    "github_workflow_ref": "1.3.6.1.4.1.57264.1.6",
    "issuer": "1.3.6.1.4.1.57264.1.8",
    "build_signer_uri": "1.3.6.1.4.1.57264.1.9",
    "build_signer_digest": "1.3.6.1.4.1.57264.1.10",
    "runner_environment": "1.3.6.1.4.1.57264.1.11",
    "source_repository_uri": "1.3.6.1.4.1.57264.1.12",
    "source_repository_digest": "1.3.6.1.4.1.57264.1.13",
    "source_repository_ref": "1.3.6.1.4.1.57264.1.14",
    "source_repository_identifier": "1.3.6.1.4.1.57264.1.15",
    "source_repository_owner_uri": "1.3.6.1.4.1.57264.1.16",
    "source_repository_owner_identifier": "1.3.6.1.4.1.57264.1.17",
    "build_config_uri": "1.3.6.1.4.1.57264.1.18",
    "build_config_digest": "1.3.6.1.4.1.57264.1.19",
    "build_trigger": "1.3.6.1.4.1.57264.1.20",
    "run_invocation_uri": "1.3.6.1.4.1.57264.1.21",
    "source_repository_visibility_at_signing": "1.3.6.1.4.1.57264.1.22",
}
CLAIM_NAMES = {oid: name for name, oid in FULCIO_CLAIMS.items()}
OID_PATTERN = re2.compile(r"[0-2](\.[0-9]+)+")


class PolicyInvalid(ValueError):
    """The document is not a policy; `field` names where, for the API's error detail."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ValuePattern:
    """A policy value: exact unless written as ^...$, then an RE2 pattern over the whole value.

    Exact by default because an identity or repository name written plainly must not
    start matching more than it says (a "." in "rfc8785.py" is not a wildcard).
    """

    def __init__(self, text: str, where: str):
        if not isinstance(text, str) or not text or len(text) > MAX_PATTERN_CHARS:
            raise PolicyInvalid(where, f"must be a non-empty string of at most {MAX_PATTERN_CHARS} characters")
        self.text = text
        self.regex = None
        if len(text) > 1 and text.startswith("^") and text.endswith("$"):
            self.regex = _compile(text, where)

    def matches(self, value: str | None) -> bool:
        if value is None:
            return False
        if self.regex is None:
            return value == self.text
        return self.regex.fullmatch(value) is not None


def _compile(pattern: str, where: str):
    try:
        return re2.compile(pattern)
    except re2.error as exc:
        raise PolicyInvalid(where, f"is not a valid RE2 regular expression: {exc}") from None


@dataclass(frozen=True)
class KeylessRule:
    issuer: str
    identity: str | None = None
    identity_regex: str | None = None
    claims: dict = field(default_factory=dict)  # OID -> ValuePattern text

    def describe(self) -> str:
        who = self.identity if self.identity is not None else f"/{self.identity_regex}/"
        extra = "".join(f", {CLAIM_NAMES.get(oid, oid)}={value}" for oid, value in sorted(self.claims.items()))
        return f"{who} via {self.issuer}{extra}"

    def mismatch(self, identity: str | None, issuer: str | None, claims: dict) -> str | None:
        """Why a signer does not satisfy this rule, or None when it does."""
        if issuer != self.issuer:
            return f"issuer {issuer!r} is not {self.issuer!r}"
        if self.identity is not None and identity != self.identity:
            return f"identity {identity!r} is not {self.identity!r}"
        if self.identity_regex is not None and not re2.fullmatch(self.identity_regex, identity or ""):
            return f"identity {identity!r} does not match {self.identity_regex!r}"
        for oid, expected in sorted(self.claims.items()):
            got = claims.get(CLAIM_NAMES.get(oid, oid))
            if not ValuePattern(expected, oid).matches(got):
                return f"claim {CLAIM_NAMES.get(oid, oid)} is {got!r}, not {expected!r}"
        return None


@dataclass(frozen=True)
class TrustedKey:
    id: str
    public_key_pem: str
    revoked_at: datetime | None
    fingerprint: str  # sha256 of the PEM SubjectPublicKeyInfo: model-signing's key hint


@dataclass(frozen=True)
class CertificateTrust:
    ca_chain_pem: str
    subject: str | None


@dataclass(frozen=True)
class SigningPolicy:
    require_signature: bool = False
    methods: tuple = METHODS
    keyless: tuple = ()
    trusted_keys: tuple = ()
    certificate: CertificateTrust | None = None

    def document(self) -> dict:
        """The normalised JSON form: what is stored and what GET returns."""
        return {
            "require_signature": self.require_signature,
            "methods": list(self.methods),
            "keyless": [_rule_document(rule) for rule in self.keyless],
            "trusted_keys": [
                {
                    "id": key.id,
                    "public_key_pem": key.public_key_pem,
                    "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
                    "fingerprint": key.fingerprint,
                }
                for key in self.trusted_keys
            ],
            "certificate": (
                {"ca_chain_pem": self.certificate.ca_chain_pem, "subject": self.certificate.subject}
                if self.certificate
                else None
            ),
        }


DEFAULT_POLICY = SigningPolicy()


def _rule_document(rule: KeylessRule) -> dict:
    if rule.identity is not None:
        return {"issuer": rule.issuer, "identity": rule.identity}
    return {"issuer": rule.issuer, "identity_regex": rule.identity_regex, "claims": dict(rule.claims)}


def key_fingerprint(public_key) -> str:
    """model-signing's key hint: SHA-256 of the PEM SubjectPublicKeyInfo, hex."""
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def _object(value, where: str, allowed: set[str], required: set[str] = frozenset()) -> dict:
    if not isinstance(value, dict):
        raise PolicyInvalid(where, "must be a JSON object")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise PolicyInvalid(f"{where}.{unknown[0]}", f"is not a policy field; allowed: {', '.join(sorted(allowed))}")
    missing = sorted(required - set(value))
    if missing:
        raise PolicyInvalid(f"{where}.{missing[0]}", "is required")
    return value


def _string(value, where: str, *, limit: int = 1024, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise PolicyInvalid(where, f"must be a non-empty string of at most {limit} characters")
    return value


def _list(value, where: str, limit: int = 100) -> list:
    if not isinstance(value, list) or len(value) > limit:
        raise PolicyInvalid(where, f"must be a list of at most {limit} entries")
    return value


def _claim_oid(name: str, where: str) -> str:
    if name in FULCIO_CLAIMS:
        return FULCIO_CLAIMS[name]
    if OID_PATTERN.fullmatch(name):
        return name
    raise PolicyInvalid(
        where, f"{name!r} is neither a dotted OID nor a claim name ({', '.join(sorted(FULCIO_CLAIMS))})"
    )


def _keyless_rule(value, where: str) -> KeylessRule:
    rule = _object(value, where, {"issuer", "identity", "identity_regex", "claims"}, {"issuer"})
    issuer = _string(rule["issuer"], f"{where}.issuer")
    if ("identity" in rule) == ("identity_regex" in rule):
        raise PolicyInvalid(where, "needs exactly one of 'identity' (exact) and 'identity_regex' (RE2, whole value)")
    if "identity" in rule:
        if "claims" in rule:
            raise PolicyInvalid(f"{where}.claims", "claims go with 'identity_regex'; an exact identity needs none")
        return KeylessRule(issuer=issuer, identity=_string(rule["identity"], f"{where}.identity"))
    pattern = _string(rule["identity_regex"], f"{where}.identity_regex", limit=MAX_PATTERN_CHARS)
    _compile(pattern, f"{where}.identity_regex")
    given = rule.get("claims", {})
    if not isinstance(given, dict) or len(given) > 50:
        raise PolicyInvalid(f"{where}.claims", "must be a JSON object of at most 50 claims")
    claims = {}
    for name, expected in given.items():
        ValuePattern(expected, f"{where}.claims.{name}")
        claims[_claim_oid(name, f"{where}.claims.{name}")] = expected
    return KeylessRule(issuer=issuer, identity_regex=pattern, claims=claims)


def _time(value, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PolicyInvalid(where, "must be an RFC 3339 time or null")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PolicyInvalid(where, f"{value!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise PolicyInvalid(where, f"{value!r} needs a time zone (e.g. 2026-01-01T00:00:00Z)")
    return moment


def _trusted_key(value, where: str) -> TrustedKey:
    entry = _object(value, where, {"id", "public_key_pem", "revoked_at", "fingerprint"}, {"id", "public_key_pem"})
    pem = _string(entry["public_key_pem"], f"{where}.public_key_pem", limit=MAX_PEM_CHARS)
    try:
        public_key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as exc:
        raise PolicyInvalid(f"{where}.public_key_pem", f"is not a PEM public key: {exc}") from None
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or public_key.curve.name not in (
        "secp256r1",
        "secp384r1",
        "secp521r1",
    ):
        raise PolicyInvalid(f"{where}.public_key_pem", "must be an ECDSA P-256, P-384 or P-521 key (model-signing's)")
    return TrustedKey(
        id=_string(entry["id"], f"{where}.id", limit=128),
        public_key_pem=pem,
        revoked_at=_time(entry.get("revoked_at"), f"{where}.revoked_at"),
        fingerprint=key_fingerprint(public_key),
    )


def _certificate_trust(value, where: str) -> CertificateTrust | None:
    if value is None:
        return None
    entry = _object(value, where, {"ca_chain_pem", "subject"}, {"ca_chain_pem"})
    pem = _string(entry["ca_chain_pem"], f"{where}.ca_chain_pem", limit=MAX_PEM_CHARS)
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        raise PolicyInvalid(f"{where}.ca_chain_pem", f"is not a PEM certificate chain: {exc}") from None
    if not certificates:
        raise PolicyInvalid(f"{where}.ca_chain_pem", "holds no certificate")
    return CertificateTrust(ca_chain_pem=pem, subject=_string(entry.get("subject"), f"{where}.subject", optional=True))


def parse_policy(document) -> SigningPolicy:
    """Validate a policy document; PolicyInvalid names the first field that is wrong."""
    policy = _object(document, "policy", {"require_signature", "methods", "keyless", "trusted_keys", "certificate"})
    require = policy.get("require_signature", False)
    if not isinstance(require, bool):
        raise PolicyInvalid("require_signature", "must be true or false")
    methods = _list(policy.get("methods", list(METHODS)), "methods")
    for index, method in enumerate(methods):
        if method not in METHODS:
            raise PolicyInvalid(f"methods[{index}]", f"{method!r} is not one of {', '.join(METHODS)}")
    keyless = tuple(
        _keyless_rule(rule, f"keyless[{index}]")
        for index, rule in enumerate(_list(policy.get("keyless", []), "keyless"))
    )
    keys = tuple(
        _trusted_key(key, f"trusted_keys[{index}]")
        for index, key in enumerate(_list(policy.get("trusted_keys", []), "trusted_keys"))
    )
    ids = [key.id for key in keys]
    if len(set(ids)) != len(ids):
        raise PolicyInvalid("trusted_keys", "key ids must be unique")
    return SigningPolicy(
        require_signature=require,
        methods=tuple(dict.fromkeys(methods)),
        keyless=keyless,
        trusted_keys=keys,
        certificate=_certificate_trust(policy.get("certificate"), "certificate"),
    )
