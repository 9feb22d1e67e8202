"""Namespace signing policies: parse_policy refuses what the verifier could not apply. No Django."""

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from registry.signing.policy import FULCIO_CLAIMS, PolicyInvalid, ValuePattern, parse_policy

GITHUB = "https://token.actions.githubusercontent.com"
IBM = "https://sigstore.verify.ibm.com/oauth2"


def public_pem(private_key) -> str:
    public = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public.decode()


EC_PEM = public_pem(ec.generate_private_key(ec.SECP256R1()))


def invalid(document) -> PolicyInvalid:
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(document)
    return caught.value


def test_it_accepts_an_empty_policy_as_the_default():
    policy = parse_policy({})
    assert (policy.require_signature, policy.methods, policy.keyless, policy.trusted_keys, policy.certificate) == (
        False,
        ("keyless", "key", "certificate"),
        (),
        (),
        None,
    )


@pytest.mark.parametrize(
    "document, field",
    [
        ({"require_signatures": True}, "policy.require_signatures"),
        ({"keyless": [{"issuer": IBM, "identity": "a@b.c", "subject": "x"}]}, "keyless[0].subject"),
        ({"trusted_keys": [{"id": "k", "public_key_pem": EC_PEM, "comment": "x"}]}, "trusted_keys[0].comment"),
        ({"certificate": {"ca_chain_pem": "x", "sans": []}}, "certificate.sans"),
    ],
    ids=["top-level", "keyless-rule", "trusted-key", "certificate"],
)
def test_it_refuses_unknown_fields(document, field):
    error = invalid(document)
    assert error.field == field
    assert "is not a policy field" in error.message


@pytest.mark.parametrize("methods", [["pgp"], ["keyless", "Keyless"], "keyless", [None]])
def test_it_refuses_bad_methods(methods):
    assert invalid({"methods": methods}).field.startswith("methods")


def test_it_refuses_a_non_boolean_require_signature():
    assert invalid({"require_signature": "yes"}).field == "require_signature"


@pytest.mark.parametrize(
    "rule",
    [
        {"issuer": IBM},
        {"issuer": IBM, "identity": "a@b.c", "identity_regex": ".*"},
    ],
    ids=["neither", "both"],
)
def test_it_needs_exactly_one_of_identity_and_identity_regex(rule):
    error = invalid({"keyless": [rule]})
    assert error.field == "keyless[0]"
    assert "exactly one of 'identity'" in error.message


def test_it_needs_an_issuer():
    assert invalid({"keyless": [{"identity": "a@b.c"}]}).field == "keyless[0].issuer"


def test_it_refuses_claims_with_an_exact_identity():
    error = invalid({"keyless": [{"issuer": GITHUB, "identity": "x", "claims": {"github_workflow_ref": "r"}}]})
    assert error.field == "keyless[0].claims"


@pytest.mark.parametrize("pattern", ["(unclosed", "a{2,1}", r"(a)\1"])  # the last is a backreference: not RE2
def test_it_refuses_an_identity_regex_that_is_not_re2(pattern):
    error = invalid({"keyless": [{"issuer": IBM, "identity_regex": pattern}]})
    assert error.field == "keyless[0].identity_regex"
    assert "RE2" in error.message


def test_it_refuses_a_claim_value_regex_that_is_not_re2():
    rule = {"issuer": GITHUB, "identity_regex": ".*", "claims": {"github_workflow_ref": "^refs/(tags$"}}
    assert invalid({"keyless": [rule]}).field == "keyless[0].claims.github_workflow_ref"


@pytest.mark.parametrize("name", ["github_repository", "workflow_ref", "1.3.6.1.4.1.57264.1.", "oid:1.2"])
def test_it_refuses_unknown_claim_names(name):
    error = invalid({"keyless": [{"issuer": GITHUB, "identity_regex": ".*", "claims": {name: "x"}}]})
    assert error.field == f"keyless[0].claims.{name}"
    assert "neither a dotted OID nor a claim name" in error.message


def test_it_accepts_claims_by_name_or_oid():
    oid = FULCIO_CLAIMS["github_workflow_sha"]
    rule = {"issuer": GITHUB, "identity_regex": ".*", "claims": {"github_workflow_ref": "refs/tags/v1", oid: "abc"}}
    (parsed,) = parse_policy({"keyless": [rule]}).keyless
    assert parsed.claims == {FULCIO_CLAIMS["github_workflow_ref"]: "refs/tags/v1", oid: "abc"}


@pytest.mark.parametrize(
    "pem",
    [
        public_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        public_pem(ed25519.Ed25519PrivateKey.generate()),
        public_pem(ec.generate_private_key(ec.SECP256K1())),  # EC, but not a NIST curve model-signing uses
        "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n",
        "not a pem at all",
    ],
    ids=["rsa", "ed25519", "secp256k1", "garbage-base64", "garbage"],
)
def test_it_refuses_keys_model_signing_cannot_use(pem):
    error = invalid({"trusted_keys": [{"id": "k", "public_key_pem": pem}]})
    assert error.field == "trusted_keys[0].public_key_pem"


def test_it_refuses_duplicate_key_ids():
    other = public_pem(ec.generate_private_key(ec.SECP384R1()))
    document = {"trusted_keys": [{"id": "ci", "public_key_pem": EC_PEM}, {"id": "ci", "public_key_pem": other}]}
    error = invalid(document)
    assert error.field == "trusted_keys"
    assert "unique" in error.message


@pytest.mark.parametrize("when", ["2026-01-01T00:00:00", "2026-01-01", "yesterday", 1767225600])
def test_it_refuses_a_revocation_time_without_a_zone(when):
    error = invalid({"trusted_keys": [{"id": "ci", "public_key_pem": EC_PEM, "revoked_at": when}]})
    assert error.field == "trusted_keys[0].revoked_at"


def test_it_refuses_a_certificate_chain_that_is_not_pem():
    error = invalid({"certificate": {"ca_chain_pem": "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----"}})
    assert error.field == "certificate.ca_chain_pem"


def test_exact_values_are_not_regexes():
    pattern = ValuePattern("trailofbits/rfc8785.py", "claims.github_workflow_repository")
    assert pattern.matches("trailofbits/rfc8785.py")
    assert not pattern.matches("trailofbits/rfc8785Xpy")
    assert not pattern.matches("trailofbits/rfc8785.py-fork")
    assert not pattern.matches(None)


def test_anchored_values_are_whole_value_regexes():
    pattern = ValuePattern(r"^refs/tags/v[0-9]+\.[0-9]+\.[0-9]+$", "claims.github_workflow_ref")
    assert pattern.matches("refs/tags/v0.1.2")
    assert not pattern.matches("refs/tags/v0.1.2-rc1")
    assert not pattern.matches("refs/heads/main")


def test_a_keyless_rule_applies_its_claims_exactly():
    rule = {
        "issuer": GITHUB,
        "identity_regex": r"https://github\.com/trailofbits/.*",
        "claims": {"github_workflow_repository": "trailofbits/rfc8785.py"},
    }
    (parsed,) = parse_policy({"keyless": [rule]}).keyless
    identity = "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
    assert parsed.mismatch(identity, GITHUB, {"github_workflow_repository": "trailofbits/rfc8785.py"}) is None
    assert "github_workflow_repository" in parsed.mismatch(
        identity, GITHUB, {"github_workflow_repository": "trailofbits/rfc8785Xpy"}
    )
    assert "does not match" in parsed.mismatch("https://github.com/elsewhere/x", GITHUB, {})
    assert "issuer" in parsed.mismatch(identity, IBM, {})


def test_the_document_round_trips():
    document = {
        "require_signature": True,
        "methods": ["keyless", "key"],
        "keyless": [
            {"issuer": IBM, "identity": "stefanb@us.ibm.com"},
            {
                "issuer": GITHUB,
                "identity_regex": r"https://github\.com/trailofbits/.*",
                "claims": {"github_workflow_ref": "^refs/tags/.*$", "1.3.6.1.4.1.57264.1.99": "x"},
            },
        ],
        "trusted_keys": [{"id": "ci", "public_key_pem": EC_PEM, "revoked_at": "2026-01-01T00:00:00Z"}],
        "certificate": None,
    }
    policy = parse_policy(document)
    normalised = policy.document()
    assert parse_policy(normalised) == policy
    assert parse_policy(normalised).document() == normalised
    assert normalised["trusted_keys"][0]["revoked_at"] == "2026-01-01T00:00:00+00:00"
    assert len(normalised["trusted_keys"][0]["fingerprint"]) == 64
    assert normalised["keyless"][1]["claims"] == {
        FULCIO_CLAIMS["github_workflow_ref"]: "^refs/tags/.*$",
        "1.3.6.1.4.1.57264.1.99": "x",
    }
