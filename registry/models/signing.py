"""Signatures: namespace signing policies, attached signatures, every verification, the registry's keys."""

import uuid

from django.conf import settings
from django.db import models


class SigningMethod(models.TextChoices):
    KEYLESS = "keyless"
    KEY = "key"
    CERTIFICATE = "certificate"


class SigningPolicy(models.Model):
    """One version of a namespace's policy. Never edited: every change is a new row.

    A namespace without rows has the default policy (version 0): signatures optional,
    keyless signatures recorded but no identity trusted, no keys, no CA.
    """

    namespace = models.CharField(max_length=64)
    version = models.PositiveIntegerField()
    document = models.JSONField(help_text="the normalised policy (registry/signing/policy.py)")
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["namespace", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["namespace", "version"], name="unique_signing_policy_version"),
        ]
        verbose_name_plural = "signing policies"

    def __str__(self) -> str:
        return f"{self.namespace} signing policy v{self.version}"


class SignerFields(models.Model):
    """Who signed, as the bundle proves it (registry/signing/verify.py `Signer`)."""

    method = models.CharField(max_length=16, choices=SigningMethod.choices, blank=True)
    signer_identity = models.CharField(max_length=1024, blank=True)
    signer_issuer = models.CharField(max_length=1024, blank=True)
    signer_claims = models.JSONField(default=dict, blank=True)
    certificate_fingerprint = models.CharField(max_length=64, blank=True)
    certificate_subject = models.CharField(max_length=1024, blank=True)
    certificate_not_before = models.DateTimeField(null=True, blank=True)
    certificate_not_after = models.DateTimeField(null=True, blank=True)
    rekor_log_id = models.CharField(max_length=64, blank=True)
    rekor_log_index = models.BigIntegerField(null=True, blank=True)
    rekor_integrated_time = models.DateTimeField(null=True, blank=True)
    key_id = models.CharField(max_length=128, blank=True)
    key_fingerprint = models.CharField(max_length=64, blank=True)
    trusted_root_id = models.CharField(max_length=64, blank=True)

    class Meta:
        abstract = True


class Signature(SignerFields):
    """A signature over an adapter version that verified when it was attached.

    `is_registry` marks the registry's own counter-signature. The latest outcome
    (`result`, `code`, `reason`, `policy`) is kept here for lists; the full history
    is in SignatureVerification.
    """

    class Result(models.TextChoices):
        PASSED = "passed"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    version = models.ForeignKey("registry.AdapterVersion", on_delete=models.PROTECT, related_name="signatures")
    bundle = models.BinaryField()
    bundle_sha256 = models.CharField(max_length=64)
    is_registry = models.BooleanField(default=False)
    statement = models.JSONField()
    trusted = models.BooleanField(default=True, help_text="the signer satisfies an identity rule of the policy")
    policy = models.ForeignKey(SigningPolicy, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    policy_version = models.PositiveIntegerField(default=0)
    result = models.CharField(max_length=8, choices=Result.choices, default=Result.PASSED)
    code = models.CharField(max_length=64, blank=True)
    reason = models.TextField(blank=True)
    verified_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["version", "bundle_sha256"], name="unique_version_signature"),
        ]

    def __str__(self) -> str:
        return f"{self.method} signature by {self.signer_identity or self.key_id or '?'}"


class SignatureVerification(SignerFields):
    """One verification and its outcome, failures included, kept for the record.

    A refused upload stored no version and no signature: its row keeps the adapter
    name, the digest the files would have had and what the bundle said about its signer.
    """

    class Trigger(models.TextChoices):
        UPLOAD = "upload"
        ATTACH = "attach"
        ON_DEMAND = "on_demand"
        PROMOTION = "promotion"
        COUNTER_SIGN = "counter_sign"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    adapter_name = models.CharField(max_length=200, help_text="namespace/name")
    digest = models.CharField(max_length=64, blank=True)
    version = models.ForeignKey(
        "registry.AdapterVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="verifications"
    )
    signature = models.ForeignKey(
        Signature, null=True, blank=True, on_delete=models.PROTECT, related_name="verifications"
    )
    bundle_sha256 = models.CharField(max_length=64, blank=True)
    policy = models.ForeignKey(SigningPolicy, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    policy_version = models.PositiveIntegerField(default=0)
    result = models.CharField(max_length=8, choices=Signature.Result.choices)
    code = models.CharField(max_length=64, blank=True)
    reason = models.TextField(blank=True)
    trusted = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["adapter_name", "-created_at"])]


class RegistryKey(models.Model):
    """A public key the registry has signed with. Kept after rotation so old signatures verify."""

    key_id = models.CharField(max_length=64, primary_key=True, help_text="SHA-256 of the PEM public key")
    public_key_pem = models.TextField()
    algorithm = models.CharField(max_length=32, default="ecdsa-p256-sha256")
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"registry key {self.key_id[:16]}"
