"""Signed checkpoints of the audit chain, with no Django import (the offline verifier uses it).

A checkpoint says "the chain had `seq` events and its head was `head_hash` at `time`", signed
with the registry's ECDSA key over the RFC 8785 canonical JSON of exactly those three fields.
Anyone holding the registry's public key (GET /api/v1/keys, or an export's keys) can check that
a chain they were given still ends in, or passes through, a state the registry vouched for.
"""

import base64

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

ALGORITHM = "ecdsa-sha256"  # DER-encoded ECDSA signature over SHA-256 of the message


def checkpoint_payload(*, seq: int, head_hash: str, time: str) -> dict:
    return {"seq": seq, "head_hash": head_hash, "time": time}


def checkpoint_message(payload: dict) -> bytes:
    """The signed bytes: the canonical JSON of seq, head_hash and time, nothing else."""
    return rfc8785.dumps(checkpoint_payload(seq=payload["seq"], head_hash=payload["head_hash"], time=payload["time"]))


def sign_checkpoint(private_key: ec.EllipticCurvePrivateKey, payload: dict) -> str:
    """The base64 signature of `payload`."""
    return base64.b64encode(private_key.sign(checkpoint_message(payload), ec.ECDSA(hashes.SHA256()))).decode()


def checkpoint_signature_valid(public_key_pem: str | bytes, payload: dict, signature_b64: str) -> bool:
    """Whether `signature_b64` is the registry key's signature of `payload`."""
    if isinstance(public_key_pem, str):
        public_key_pem = public_key_pem.encode()
    public_key = serialization.load_pem_public_key(public_key_pem)
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        return False
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        public_key.verify(signature, checkpoint_message(payload), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, KeyError, TypeError):
        return False
    return True
