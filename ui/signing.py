"""What the pages show about signatures: a version's panel, a namespace's policy, list badges."""

import json
import re

from cryptography import x509

from registry.errors import RegistryError
from registry.models import Signature, SignatureVerification, SigningPolicy
from registry.refs import NAMESPACE_SEGMENT
from registry.services.signatures import signing_policy_current

NAMESPACE_PATTERN = re.compile(rf"{NAMESPACE_SEGMENT}")
REFUSED_SHOWN = 5
REFUSED_COLUMNS = (
    "created_at",
    "trigger",
    "code",
    "reason",
    "signer_identity",
    "certificate_subject",
    "key_id",
    "version__number",
    "created_by__username",
)


def namespaces_requiring_signatures(namespaces) -> set[str]:
    """Of these namespaces, those whose current policy requires a signature: one query for a whole page.

    Stored documents are normalised by parse_policy, so `require_signature` is always present.
    """
    latest = (
        SigningPolicy.objects.filter(namespace__in=set(namespaces))
        .order_by("namespace", "-version")
        .distinct("namespace")
        .values_list("namespace", "document")
    )
    return {namespace for namespace, document in latest if document.get("require_signature")}


def signature_state(signature: Signature) -> str:
    """failed, trusted, or untrusted (valid and logged, but no rule of the policy names the signer)."""
    if signature.result == Signature.Result.FAILED:
        return "failed"
    return "trusted" if signature.trusted else "untrusted"


def signing_context(version) -> dict:
    """The version page's signature panel: its signatures, the namespace policy, recent refusals."""
    current = signing_policy_current(version.adapter.namespace)
    signatures = list(version.signatures.select_related("created_by"))
    for signature in signatures:
        signature.state = signature_state(signature)
    refused = (
        SignatureVerification.objects.filter(adapter_name=version.adapter.full_name, result=Signature.Result.FAILED)
        .select_related("version", "created_by")
        .only(*REFUSED_COLUMNS)  # what a row shows, not the refused version's full row and its name's
        .order_by("-created_at")[:REFUSED_SHOWN]
    )
    return {
        "signatures": signatures,
        "publisher_signed": any(not s.is_registry for s in signatures),
        "signing_policy": current,
        "refused_signatures": list(refused),
    }


# --- The policy page -------------------------------------------------------------------------


def certificate_subjects(ca_chain_pem: str) -> list[str]:
    """The subjects of a policy's CA chain, as a person reads them (the chain was validated on save)."""
    try:
        return [cert.subject.rfc4514_string() for cert in x509.load_pem_x509_certificates(ca_chain_pem.encode())]
    except ValueError:
        return []


def policy_context(namespace: str) -> dict:
    current = signing_policy_current(namespace)
    policy = current.policy
    history = SigningPolicy.objects.filter(namespace=namespace).select_related("created_by").order_by("-version")
    return {
        "namespace": namespace,
        "current": current,
        "policy": policy,
        "ca_subjects": certificate_subjects(policy.certificate.ca_chain_pem) if policy.certificate else [],
        "policy_text": json.dumps(policy.document(), indent=2),
        "document_text": json.dumps(policy.document(), indent=2),  # the form's text; on an error, the admin's own
        "reason": "",
        "history": history,
    }


def policy_document_from_text(text: str):
    """The textarea's JSON, or the API's policy_invalid error naming where it stopped parsing."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RegistryError(
            "policy_invalid",
            f"the policy is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            field="policy",
        ) from None
